"""`pycounter`: a visit counter in Python, the key-value state of a
procedure built with componentize-py (`make procedures-python`). Its world
is wit/procedure.wit's merged with `wasi:keyvalue/imports@0.2.0-draft2`
(one world that includes both): `store.open` opens the procedure's own bucket, and
`atomics.increment` counts atomically across concurrent calls."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.stub import RpcError
from wit_world.imports import atomics, store

PAGE = {"name": "page", "required": False, "schema": {"type": "string"}}
COUNT = {"name": "result", "schema": {"type": "integer"}}
METHODS = {
    "hit": "Counts a visit of `page` (default \"home\") and returns its visits so far.",
    "visits": "The visits of `page` (default \"home\") so far, without counting one.",
}


def error(code, message, data=None):
    return Err(RpcError(code, message, None if data is None else json.dumps(data)))


def kv_error(e):
    """A wasi:keyvalue error as the SDK answers one: -32010 `key-value: ...`."""
    reason = e.value
    if isinstance(reason, store.Error_Other):
        return error(-32010, f"key-value: {reason.value}", {"kind": "other"})
    kind = "no-such-store" if isinstance(reason, store.Error_NoSuchStore) else "access-denied"
    return error(-32010, f"key-value: {kind}", {"kind": kind})


class Stub(exports.Stub):
    def describe(self) -> str:
        methods = [{"name": name, "summary": summary, "params": [PAGE], "result": COUNT} for name, summary in METHODS.items()]
        return json.dumps({"methods": methods})

    def call(self, method: str, params: str) -> str:
        if method not in METHODS:
            raise error(-32601, "Method not found", {"method": method})
        args = json.loads(params)
        page = args.get("page") if isinstance(args, dict) else (args[0] if args else None)
        if page is None:
            page = "home"
        if not isinstance(page, str):
            raise error(-32602, "invalid parameter `page`: expected a string", {"parameter": "page"})
        try:
            with store.open("default") as bucket:
                if method == "hit":
                    return json.dumps(atomics.increment(bucket, f"visits:{page}", 1))
                value = bucket.get(f"visits:{page}")
                return json.dumps(0 if value is None else int(value))
        except Err as e:
            raise kv_error(e)
