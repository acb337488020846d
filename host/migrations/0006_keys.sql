-- Caller keys (host/src/keys/pg.rs): who may call which procedures over
-- JSON-RPC, and how often. A key itself is never stored: only its SHA-256
-- (a key is 256 random bits) and its first characters, for recognition.
-- A change is one transaction under the registry's write lock that also
-- adds a row named '@keys' to `changes` and notifies `wasmrpc_changes`:
-- replicas following the log read this table again.
CREATE TABLE caller_keys (
    name       text COLLATE "C" PRIMARY KEY,
    sha256     text        NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    prefix     text        NOT NULL,
    procedures text[]      NOT NULL,
    -- Its own rate (calls per second, burst); NULL: the replica's --rate-limit.
    per_second integer     NULL CHECK (per_second > 0),
    burst      integer     NULL CHECK (burst > 0),
    created_at timestamptz NOT NULL
);
