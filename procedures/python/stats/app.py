"""`pystats`: a procedure written in Python, built into a component with
componentize-py (`make procedures-python`). It implements wit/procedure.wit
without an SDK: `describe` returns OpenRPC Method Objects, `call` dispatches
on the method name and answers JSON text or an rpc-error."""

import json
import statistics

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.stub import RpcError
from wit_world.imports import host

NUMBERS = {"type": "array", "items": {"type": "number"}, "minItems": 1}


def mean(values):
    """The arithmetic mean of a non-empty list of numbers."""
    return statistics.fmean(values)


def median(values):
    """The median of a non-empty list of numbers."""
    return statistics.median(values)


def summary(values):
    """Count, mean, median and standard deviation of a non-empty list of numbers."""
    return {
        "count": len(values),
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


METHODS = {"mean": mean, "median": median, "summary": summary}


def error(code, message, data=None):
    return Err(RpcError(code, message, None if data is None else json.dumps(data)))


class Stub(exports.Stub):
    def describe(self) -> str:
        methods = [
            {
                "name": name,
                "summary": function.__doc__,
                "params": [{"name": "values", "required": True, "schema": NUMBERS}],
                "result": {"name": "result", "schema": {"type": "object"} if name == "summary" else {"type": "number"}},
            }
            for name, function in METHODS.items()
        ]
        return json.dumps({"methods": methods})

    def call(self, method: str, params: str) -> str:
        function = METHODS.get(method)
        if function is None:
            raise error(-32601, "Method not found")
        args = json.loads(params)
        values = args.get("values") if isinstance(args, dict) else (args[0] if args else None)
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise error(-32602, "invalid parameter `values`: expected an array of numbers", {"parameter": "values"})
        if not values:
            raise error(1, "values is empty")
        host.log(host.Level.DEBUG, f"{method} of {len(values)} values")
        return json.dumps(function(values))
