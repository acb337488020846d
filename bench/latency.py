#!/usr/bin/env python3
"""Sequential end-to-end latency of JSON-RPC calls against a running wasmrpc.

One keep-alive TCP connection with TCP_NODELAY and hand-written HTTP/1.1 (the
client's own cost stays a few microseconds, unlike http.client's), N calls of
each method after a warm-up of N/10; prints median and p99 per method. Used by
`make bench`, which starts the server.

    python3 bench/latency.py http://127.0.0.1:8080 1000 'math.add:[1,2]' 'nope.x:[]'
"""

import json
import socket
import statistics
import sys
import time
import urllib.parse


def exchange(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("the server closed the connection")
        buf += chunk
        head, sep, body = buf.partition(b"\r\n\r\n")
        if not sep:
            continue
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(body) >= length:
            return body[:length]


def main() -> None:
    url, count, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    parsed = urllib.parse.urlparse(url)
    sock = socket.create_connection((parsed.hostname, parsed.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(f"{'method':<20} {'calls':>6} {'p50 us':>9} {'p99 us':>9}")
    for spec in specs:
        method, _, params = spec.partition(":")
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": json.loads(params or "[]"), "id": 1}).encode()
        request = (
            b"POST /rpc HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        times = []
        for i in range(count + count // 10):
            start = time.perf_counter()
            answer = exchange(sock, request)
            elapsed = time.perf_counter() - start
            if b'"result"' not in answer and method != "nope.x":
                sys.exit(f"{method}: {answer.decode()}")
            if i >= count // 10:
                times.append(elapsed * 1e6)
        times.sort()
        p50, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
        print(f"{method:<20} {count:>6} {p50:>9.1f} {p99:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
