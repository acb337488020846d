"""Client stub of the wasmrpc procedures {procedures}.

    client = Client("http://127.0.0.1:8080")
    client.<procedure>.<method>(...)

A JSON-RPC error answer raises `RpcError` (``code``, ``message``, ``data``);
no answer at all raises `TransportError`; an answer that is not what the
stub expects raises `ProtocolError`. Python 3.9+, standard library only;
a ``ws://`` or ``wss://`` URL (one WebSocket connection for every call)
needs the ``websockets`` package.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Generic, List, Literal, Optional, Protocol, Tuple, TypeVar, cast

_T = TypeVar("_T")


class RpcError(Exception):
    """A JSON-RPC error answer: the procedure's own error or the server's."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        # A server's text `data` (what was wrong: a limit, a missing key) is shown too.
        detail = f": {data}" if isinstance(data, str) else ""
        super().__init__(f"{message} (code {code}){detail}")
        self.code = code
        self.message = message
        self.data = data


class TransportError(Exception):
    """No answer: the server is unreachable, the connection broke, or the time limit passed."""


class ProtocolError(Exception):
    """An answer that is not the JSON-RPC response the stub expects (if a result has
    another type, the procedure changed: generate the stub again)."""


def _unexpected(expected: str, value: Any) -> ProtocolError:
    shown = json.dumps(value)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return ProtocolError(f"expected {expected}, got {shown}")


def _any(value: Any) -> Any:
    return value


def _none(value: Any) -> None:
    if value is not None:
        raise _unexpected("null", value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _unexpected("a boolean", value)


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _unexpected("an integer", value)


def _float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise _unexpected("a number", value)


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _unexpected("a string", value)


def _list(item: Callable[[Any], _T]) -> Callable[[Any], List[_T]]:
    def decode(value: Any) -> List[_T]:
        if not isinstance(value, list):
            raise _unexpected("an array", value)
        return [item(v) for v in value]

    return decode


def _dict(item: Callable[[Any], _T]) -> Callable[[Any], Dict[str, _T]]:
    def decode(value: Any) -> Dict[str, _T]:
        return {k: item(v) for k, v in _object(value, "a map").items()}

    return decode


def _optional(item: Callable[[Any], _T]) -> Callable[[Any], Optional[_T]]:
    def decode(value: Any) -> Optional[_T]:
        return None if value is None else item(value)

    return decode


def _items(value: Any, count: int) -> List[Any]:
    if not isinstance(value, list) or len(value) != count:
        raise _unexpected(f"an array of {count}", value)
    return value


def _object(value: Any, what: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise _unexpected(f"an object ({what})", value)
    return value


def _field(fields: Dict[str, Any], name: str, what: str) -> Any:
    if name not in fields:
        raise ProtocolError(f"{what} has no field {name!r}: {json.dumps(fields)[:200]}")
    return fields[name]


def _encode(value: Any) -> Any:
    """JSON for a parameter: records by their wire names, optional fields left out."""
    to_json = getattr(value, "_to_json", None)
    if to_json is not None:
        return to_json()
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _outcome(answer: Any) -> Any:
    """The result of one JSON-RPC response; its error raised as `RpcError`."""
    if not isinstance(answer, dict) or answer.get("jsonrpc") != "2.0":
        raise _unexpected("a JSON-RPC 2.0 response", answer)
    if "error" in answer:
        error = answer["error"]
        if not isinstance(error, dict) or not isinstance(error.get("code"), int) or not isinstance(error.get("message"), str):
            raise _unexpected("a JSON-RPC error object", error)
        raise RpcError(error["code"], error["message"], error.get("data"))
    if "result" not in answer:
        raise _unexpected("a result or an error", answer)
    return answer["result"]


class _Caller(Protocol):
    def __call__(self, method: str, params: Dict[str, Any], decode: Callable[[Any], _T]) -> _T: ...


class _Transport:
    """POSTs JSON-RPC requests to the server's /rpc with urllib."""

    def __init__(self, url: str, admin_token: Optional[str], timeout: float) -> None:
        url = url.rstrip("/")
        self.endpoint = url if url.endswith("/rpc") else url + "/rpc"
        self.headers = {"Content-Type": "application/json"}
        if admin_token:
            self.headers["Authorization"] = "Bearer " + admin_token
        self.timeout = timeout
        self.next_id = 0

    def post(self, body: Any) -> Any:
        request = urllib.request.Request(self.endpoint, data=json.dumps(body).encode(), headers=self.headers, method="POST")
        status = 200
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as e:
            # A refusal such as 413 still carries a JSON-RPC error.
            status, text = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            raise TransportError(f"cannot reach the server at {self.endpoint}: {reason}") from e
        try:
            return json.loads(text)
        except ValueError:
            raise ProtocolError(f"the server answered HTTP {status} without a JSON-RPC response: {text[:200]!r}") from None

    def call(self, method: str, params: Dict[str, Any], decode: Callable[[Any], _T]) -> _T:
        self.next_id += 1
        answer = self.post({"jsonrpc": "2.0", "method": method, "params": params, "id": self.next_id})
        return decode(_outcome(answer))

    def close(self) -> None:
        """Nothing to close: urllib makes a connection per request."""


class _WsTransport(_Transport):
    """Sends JSON-RPC requests over one WebSocket connection to the server's /rpc
    (the ``websockets`` package's sync client), one at a time, each answer taken
    by its id. The connection is made at the first call and again after it drops."""

    def __init__(self, url: str, admin_token: Optional[str], timeout: float) -> None:
        super().__init__(url, admin_token, timeout)
        try:
            self._websockets = importlib.import_module("websockets.sync.client")
            self._errors = importlib.import_module("websockets.exceptions")
        except ImportError as e:
            raise ImportError(f"a WebSocket URL ({url}) needs the websockets package: pip install websockets") from e
        del self.headers["Content-Type"]
        self._connection: Any = None
        self._lock = threading.Lock()

    def post(self, body: Any) -> Any:
        deadline = time.monotonic() + self.timeout
        with self._lock:
            # A second try only if the request could not be sent (the
            # connection had dropped unseen): the server never had it.
            for attempt in (1, 2):
                connection, refusal = self._connect(deadline)
                if connection is None:
                    return refusal
                try:
                    connection.send(json.dumps(body))
                except (self._errors.ConnectionClosed, OSError) as e:
                    self._drop()
                    if attempt == 2:
                        raise TransportError(f"the WebSocket connection to {self.endpoint} closed: {e}") from e
                    continue
                return self._answer(connection, body, deadline)
        raise AssertionError("unreachable")

    def _connect(self, deadline: float) -> Tuple[Any, Any]:
        """The open connection, made now if there is none; or no connection and
        the JSON-RPC error the server refused the handshake with (a 401 may
        carry one)."""
        if self._connection is None:
            try:
                self._connection = self._websockets.connect(
                    self.endpoint,
                    additional_headers=self.headers,
                    open_timeout=max(deadline - time.monotonic(), 0.001),
                    max_size=64 * 2**20,
                )
            except self._errors.InvalidStatus as e:
                status, text = e.response.status_code, e.response.body
                try:
                    return None, json.loads(text)
                except ValueError:
                    raise ProtocolError(
                        f"the server refused the WebSocket handshake with HTTP {status}: {text[:200]!r} "
                        "(does this server take ws:// URLs?)"
                    ) from None
            except (OSError, self._errors.WebSocketException) as e:
                raise TransportError(f"cannot reach the server at {self.endpoint}: {e}") from e
        return self._connection, None

    def _answer(self, connection: Any, body: Any, deadline: float) -> Any:
        """The answer to `body` (a batch's list, or the answer with its id),
        skipping notifications and answers to calls no longer waiting."""
        while True:
            try:
                frame = connection.recv(timeout=max(deadline - time.monotonic(), 0))
            except TimeoutError:
                self._drop()  # its late answer must not be taken for the next call's
                raise TransportError(f"no answer from {self.endpoint} within {self.timeout} s") from None
            except (self._errors.ConnectionClosed, OSError) as e:
                self._drop()
                raise TransportError(f"the WebSocket connection to {self.endpoint} closed: {e}") from e
            try:
                answer = json.loads(frame)
            except ValueError:
                raise ProtocolError(f"the server sent a frame that is not JSON: {frame[:200]!r}") from None
            if isinstance(body, list):
                if isinstance(answer, list):
                    return answer
            elif isinstance(answer, dict) and "method" not in answer and answer.get("id") == body["id"]:
                return answer
            if isinstance(answer, dict) and "method" not in answer and answer.get("id") is None:
                return answer  # an error the server could not tie to a request: this one's

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        with self._lock:
            self._drop()


def _open_transport(url: str, admin_token: Optional[str], timeout: float) -> _Transport:
    if url.lower().startswith(("ws://", "wss://")):
        return _WsTransport(url, admin_token, timeout)
    return _Transport(url, admin_token, timeout)


class Pending(Generic[_T]):
    """The result of a call in a `Batch`, there once the batch is sent."""

    def __init__(self, decode: Callable[[Any], _T]) -> None:
        self._decode = decode
        self._answer: Optional[Dict[str, Any]] = None

    def result(self) -> _T:
        """The call's result; raises its `RpcError`, or `RuntimeError` before the batch is sent."""
        if self._answer is None:
            raise RuntimeError("the batch has not been sent yet: call send() or leave its `with` block")
        return self._decode(_outcome(self._answer))
