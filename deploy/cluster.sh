#!/usr/bin/env bash
# `make cluster`: a private PostgreSQL, three wasmrpc replicas sharing it as
# their registry, and nginx in front (deploy/nginx.conf), all on loopback,
# with the examples deployed through nginx. Ctrl-C stops and removes it all.
#
#   deploy/cluster.sh WASMRPC_BIN WASM_DIR EXAMPLE...
#
# Ports: CLUSTER_PORT (nginx, 8080), CLUSTER_REPLICA_PORTS ("8081 8082 8083"),
# CLUSTER_PG_PORT (5433). PostgreSQL refuses to run as root: as root it runs
# as the `postgres` user of Debian's package.
set -euo pipefail
BIN=$1 WASM_DIR=$2
shift 2
EXAMPLES=("$@")
PORT=${CLUSTER_PORT:-8080}
read -r -a REPLICA_PORTS <<< "${CLUSTER_REPLICA_PORTS:-8081 8082 8083}"
PG_PORT=${CLUSTER_PG_PORT:-5433}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PG_BIN/initdb" ] || PG_BIN=$(pg_config --bindir)
HERE=$(cd "$(dirname "$0")" && pwd)

DIR=$(mktemp -d /tmp/wasmrpc-cluster.XXXXXX)
chmod 755 "$DIR"
mkdir "$DIR/pg"
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR/pg"

pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping the cluster"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  as_postgres "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -m fast -w stop > /dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap stop INT TERM EXIT

as_postgres "$PG_BIN/initdb" -D "$DIR/pg/data" --auth=trust -U postgres -E UTF8 --locale=C > "$DIR/initdb.log"
as_postgres "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/postgres.log" -w \
  -o "-p $PG_PORT -k $DIR/pg -c listen_addresses=127.0.0.1" start > /dev/null
as_postgres "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres wasmrpc
REGISTRY="postgres://postgres@127.0.0.1:$PG_PORT/wasmrpc"

upstreams=""
for i in "${!REPLICA_PORTS[@]}"; do
  p=${REPLICA_PORTS[$i]}
  "$BIN" serve --listen "127.0.0.1:$p" --data-dir "$DIR/replica$i" --registry "$REGISTRY" \
    > /dev/null 2> "$DIR/replica$i.log" &
  pids+=($!)
  upstreams+="server 127.0.0.1:$p max_fails=1 fail_timeout=2s; "
done
sed -e "s|{{DIR}}|$DIR|g" -e "s|{{LISTEN}}|127.0.0.1:$PORT|g" -e "s|{{UPSTREAMS}}|$upstreams|g" \
  "$HERE/nginx.conf" > "$DIR/nginx.conf"
nginx -p "$DIR" -e "$DIR/error.log" -c "$DIR/nginx.conf" &
pids+=($!)

# Each replica answers once it has loaded the registry (`list` waits for it).
for p in "${REPLICA_PORTS[@]}" "$PORT"; do
  for _ in $(seq 100); do
    "$BIN" list --server "http://127.0.0.1:$p" > /dev/null 2>&1 && break
    sleep 0.2
  done
done
for name in "${EXAMPLES[@]}"; do
  "$BIN" deploy "$name" "$WASM_DIR/$name.wasm" --server "http://127.0.0.1:$PORT" > /dev/null
done

echo
echo "wasmrpc cluster: nginx on http://127.0.0.1:$PORT, in front of"
for i in "${!REPLICA_PORTS[@]}"; do
  echo "  replica $i  http://127.0.0.1:${REPLICA_PORTS[$i]}  (log: $DIR/replica$i.log)"
done
echo "registry: $REGISTRY (psql -h 127.0.0.1 -p $PG_PORT -U postgres wasmrpc)"
echo "deployed through nginx: ${EXAMPLES[*]}"
echo
echo "  curl -s http://127.0.0.1:$PORT/rpc -d '{\"jsonrpc\": \"2.0\", \"method\": \"math.add\", \"params\": [2, 3], \"id\": 1}'"
echo "  $BIN deploy words $WASM_DIR/text.wasm --server http://127.0.0.1:${REPLICA_PORTS[0]}"
echo "  $BIN list --server http://127.0.0.1:${REPLICA_PORTS[2]}"
echo
echo "Ctrl-C stops everything."
wait
