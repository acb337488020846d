"""JSON-RPC over WebSocket with the `websockets` package (a client nobody
here wrote), against a server with `math` deployed: single calls, a batch, a
notification (no answer), concurrent calls answered by id, a parse error,
`wasmrpc.subscribe` seeing a deploy this script makes, `wasmrpc.unsubscribe`,
and a binary message closed with 1003.

Usage: websocket_client.py BASE_URL WASM_FILE (deployed as `wsdeployed`).
"""

import asyncio
import json
import sys
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 30


async def ask(ws, request):
    await ws.send(json.dumps(request))
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


def deploy(base, name, wasm):
    with open(wasm, "rb") as f:
        body = f.read()
    request = urllib.request.Request(f"{base}/procedures/{name}", data=body, method="PUT")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
        return json.loads(answer.read())


async def main(base, wasm):
    checks = 0
    url = base.replace("http://", "ws://", 1) + "/rpc"
    async with connect(url, max_size=None) as ws:
        # A single call.
        answer = await ask(ws, {"jsonrpc": "2.0", "method": "math.add", "params": [2, 3], "id": 1})
        assert answer == {"jsonrpc": "2.0", "result": 5, "id": 1}, answer
        checks += 1

        # A batch: answers for the calls with ids, none for the notification.
        answer = await ask(ws, [
            {"jsonrpc": "2.0", "method": "math.add", "params": [1, 2], "id": "a"},
            {"jsonrpc": "2.0", "method": "math.add", "params": [9, 9]},
            {"jsonrpc": "2.0", "method": "math.nope", "id": "b"},
        ])
        by_id = {a["id"]: a for a in answer}
        assert len(answer) == 2 and by_id["a"]["result"] == 3, answer
        assert by_id["b"]["error"]["code"] == -32601, answer
        checks += 1

        # A notification is not answered: the next message is the next call's answer.
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "math.add", "params": [1, 1]}))
        answer = await ask(ws, {"jsonrpc": "2.0", "method": "math.add", "params": [20, 22], "id": 2})
        assert answer == {"jsonrpc": "2.0", "result": 42, "id": 2}, answer
        checks += 1

        # Concurrent calls on one connection, matched by id.
        for i in range(20):
            await ws.send(json.dumps({"jsonrpc": "2.0", "method": "math.add", "params": [i, i], "id": 100 + i}))
        got = {}
        for _ in range(20):
            answer = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            got[answer["id"]] = answer["result"]
        assert got == {100 + i: 2 * i for i in range(20)}, got
        checks += 1

        # Not JSON: the spec's parse error, and the connection goes on.
        await ws.send("{not json")
        answer = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert answer == {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}, answer
        checks += 1

        # Subscribe, deploy: the notification carries the new version.
        answer = await ask(ws, {"jsonrpc": "2.0", "method": "wasmrpc.subscribe", "params": ["procedures"], "id": 3})
        subscription = answer["result"]
        assert isinstance(subscription, str), answer
        deployed = await asyncio.to_thread(deploy, base, "wsdeployed", wasm)
        note = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert note["jsonrpc"] == "2.0" and "id" not in note, note
        assert note["method"] == "wasmrpc.procedures", note
        assert note["params"]["subscription"] == subscription, note
        result = note["params"]["result"]
        assert result["name"] == "wsdeployed" and result["change"] == "deployed", note
        assert result["procedure"]["version"] == deployed["version"] == 1, (note, deployed)
        checks += 1

        # Unsubscribe: true, then false (no such subscription any more).
        answer = await ask(ws, {"jsonrpc": "2.0", "method": "wasmrpc.unsubscribe", "params": [subscription], "id": 4})
        assert answer == {"jsonrpc": "2.0", "result": True, "id": 4}, answer
        answer = await ask(ws, {"jsonrpc": "2.0", "method": "wasmrpc.unsubscribe", "params": [subscription], "id": 5})
        assert answer == {"jsonrpc": "2.0", "result": False, "id": 5}, answer
        checks += 1

        # A binary message: closed with 1003 and a reason.
        await ws.send(b"\x00\x01")
        try:
            extra = await asyncio.wait_for(ws.recv(), TIMEOUT)
            raise AssertionError(f"expected a close, got {extra!r}")
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1003, closed
            assert "text" in closed.rcvd.reason, closed.rcvd.reason
        checks += 1
    print(f"{checks} passed, 0 failed")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
