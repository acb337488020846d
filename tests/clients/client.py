#!/usr/bin/env python3
"""A Python client of wasmrpc, with the published `jsonrpcclient` library and
`requests`: single calls, params by name, a batch, a notification and an
error. Run by the end-to-end tests: `python3 client.py http://127.0.0.1:PORT`.
Exits non-zero with a message on the first thing that is not as expected."""

import sys

import requests
from jsonrpcclient import Error, Ok, notification, parse, request

url = sys.argv[1] + "/rpc"


def post(payload):
    response = requests.post(url, json=payload, timeout=30)
    response.raise_for_status()
    return response


def call(method, params):
    return parse(post(request(method, params=params)).json())


result = call("math.add", (2, 3))
assert isinstance(result, Ok) and result.result == 5, result

result = call("math.add", {"a": 40, "b": 2})
assert isinstance(result, Ok) and result.result == 42, result

result = call("text.slugify", {"text": "Hello, Python!"})
assert isinstance(result, Ok) and result.result == "hello-python", result

batch = [request("math.multiply", params=(6, 7)), request("text.reverse", params=("abc",)), request("math.divide", params=(1, 0))]
answers = {a.id: a for a in parse(post(batch).json())}
assert answers[batch[0]["id"]].result == 42, answers
assert answers[batch[1]["id"]].result == "cba", answers
error = answers[batch[2]["id"]]
assert isinstance(error, Error) and error.code == 1 and error.message == "division by zero", error

response = post(notification("math.add", params=(1, 2)))
assert response.status_code == 204 and response.content == b"", response

error = call("math.add", (1, "two"))
assert isinstance(error, Error) and error.code == -32602 and "`b`" in error.message, error

error = call("nope.x", [])
assert isinstance(error, Error) and error.code == -32601 and error.message == "Method not found", error

print("python client: ok")
