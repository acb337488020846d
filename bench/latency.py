#!/usr/bin/env python3
"""Sequential end-to-end latency of JSON-RPC calls against a running wasmrpc.

One keep-alive HTTP connection, N calls of each method after a warm-up; prints
median and p99 per method. Used by `make bench` (which starts the server).

    python3 bench/latency.py http://127.0.0.1:8080 1000 math.add:[1,2] test.ten:[1,2,3,4,5,6,7,8,9,10]
"""

import http.client
import json
import statistics
import sys
import time
import urllib.parse


def main() -> None:
    url, count, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    rows = []
    for spec in specs:
        method, _, params = spec.partition(":")
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": json.loads(params or "[]"), "id": 1})
        headers = {"content-type": "application/json"}
        times = []
        for i in range(count + count // 10):
            start = time.perf_counter()
            conn.request("POST", "/rpc", body, headers)
            answer = conn.getresponse().read()
            elapsed = time.perf_counter() - start
            if b'"error"' in answer:
                sys.exit(f"{method}: {answer.decode()}")
            if i >= count // 10:  # the first tenth warms up
                times.append(elapsed * 1e6)
        times.sort()
        rows.append((method, statistics.median(times), times[int(len(times) * 0.99) - 1]))
    print(f"{'method':<20} {'calls':>6} {'p50 us':>9} {'p99 us':>9}")
    for method, p50, p99 in rows:
        print(f"{method:<20} {count:>6} {p50:>9.1f} {p99:>9.1f}")


if __name__ == "__main__":
    main()
