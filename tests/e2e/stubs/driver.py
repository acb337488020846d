"""Calls every example method through the generated Python stub (stub.py
beside it). Usage: driver.py URL calls|removed|stopped, URL http:// or ws://
(then also calls from threads on the one connection, and a call after the
server closed it for idleness). mypy --strict checks this file too, so a
wrongly typed stub fails here before it runs."""

import sys
import threading
import time
from typing import Dict

from stub import Client, Customer, Item, Order, RpcError, TransportError


def calls(client: Client) -> None:
    # By position and by name.
    assert client.math.add(2, 3) == 5
    assert client.math.add(a=2, b=40) == 42
    assert client.math.subtract(5, 3) == 2
    assert client.math.multiply(6, 7) == 42
    assert client.math.divide(a=1, b=4) == 0.25
    try:
        client.math.divide(a=1, b=0)
        raise AssertionError("math.divide by zero should fail")
    except RpcError as e:
        assert (e.code, e.message, e.data) == (1, "division by zero", {"a": 1.0}), vars(e)
    # An optional parameter left out, then given.
    assert client.math.round(3.14159) == 3.0
    assert client.math.round(3.14159, digits=2) == 3.14
    stats = client.math.stats([1.0, 2.0, 3.0])
    assert (stats.count, stats.sum, stats.mean) == (3, 6.0, 2.0), stats
    assert client.math.stats([]).mean is None

    assert client.text.word_count("one two  three") == 3
    assert client.text.slugify("Hello, World!") == "hello-world"
    assert client.text.slugify(text="Hello, World!", separator="_") == "hello_world"
    assert client.text.reverse("abc") == "cba"
    assert client.text.upper("abc") == "ABC"
    assert client.text.is_palindrome("A man, a plan, a canal: Panama") is True

    # Nested records in and out, an enum, optional fields.
    order = Order(
        customer=Customer(name="Ada", email="ada@example.com"),
        items=[Item(sku="A-1", quantity=2, unit_price=9.5)],
        coupon="TENOFF",
    )
    invoice = client.json.invoice(order)
    assert (invoice.subtotal, invoice.discount, invoice.total) == (19.0, 1.9, 17.1), invoice
    assert invoice.customer == Customer(name="Ada", email="ada@example.com"), invoice
    assert [(line.sku, line.quantity, line.total) for line in invoice.lines] == [("A-1", 2, 19.0)]
    plain = client.json.invoice(Order(customer=Customer(name="Bo"), items=[Item(sku="B", quantity=1, unit_price=2.5)]))
    assert (plain.discount, plain.total, plain.customer.email) == (None, 2.5, None), plain
    try:
        client.json.invoice(Order(customer=Customer(name="Cy"), items=[]))
        raise AssertionError("an order without items should fail")
    except RpcError as e:
        assert e.code == 2, vars(e)
    census = client.json.census({"a": [1, "x", None, True], "b": {}})
    assert (census.objects, census.arrays, census.numbers, census.strings, census.nulls, census.booleans) == (2, 1, 1, 1, 1, 1)

    # The JSON-RPC specification's methods.
    assert client.subtract.subtract(42, 23) == 19
    assert client.subtract.subtract(subtrahend=23, minuend=42) == 19
    assert client.sum.sum() == 0
    assert client.sum.sum(1, 2) == 3
    assert client.sum.sum(c=4) == 4
    assert client.get_data.get_data() == ("hello", 5)
    client.update.update(1, 2, 3, 4, 5)
    client.notify_hello.notify_hello(7)
    client.notify_sum.notify_sum(1, 2, 3)

    # A batch: one request, typed results in order, each error its own.
    with client.batch() as batch:
        total = batch.math.add(2, 3)
        quotient = batch.math.divide(1, 0)
        shout = batch.text.upper("x")
        data = batch.get_data.get_data()
    assert total.result() == 5
    assert shout.result() == "X"
    assert data.result() == ("hello", 5)
    try:
        quotient.result()
        raise AssertionError("math.divide by zero in a batch should fail")
    except RpcError as e:
        assert e.code == 1


def websocket(client: Client) -> None:
    # Threads share the connection: one call at a time, each its own answer.
    sums: Dict[int, int] = {}

    def add(i: int) -> None:
        sums[i] = client.math.add(i, 1000)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sums == {i: i + 1000 for i in range(8)}, sums
    # The server closes an idle connection (after 1 s here): the next call
    # connects anew.
    time.sleep(3)
    assert client.math.add(1, 1) == 2


def removed(client: Client) -> None:
    try:
        client.text.upper("x")
        raise AssertionError("text was removed")
    except RpcError as e:
        assert (e.code, e.message) == (-32601, "Method not found"), vars(e)

def stopped(client: Client) -> None:
    try:
        client.math.add(1, 2)
        raise AssertionError("the server is stopped")
    except TransportError as e:
        assert "cannot reach the server" in str(e), e

def main() -> None:
    url, phase = sys.argv[1], sys.argv[2]
    with Client(url, timeout=10.0) as client:
        {"calls": calls, "removed": removed, "stopped": stopped}[phase](client)
        if phase == "calls" and url.startswith("ws://"):
            websocket(client)
    print("ok")

if __name__ == "__main__":
    main()
