-- Instance reuse (host/src/sandbox/reuse.rs): what a deploy asked for with
-- `reuse`, `reuse-idle-ms` and `reuse-memory-mib`, kept with the version, so
-- a rollback brings back the setting the version was deployed with.
-- reuse_calls 1: a fresh instance per call (every version deployed before this).
ALTER TABLE versions
    ADD COLUMN reuse_calls integer NOT NULL DEFAULT 1 CHECK (reuse_calls >= 1),
    ADD COLUMN reuse_idle_ms bigint NOT NULL DEFAULT 30000 CHECK (reuse_idle_ms >= 1),
    ADD COLUMN reuse_memory_mib bigint CHECK (reuse_memory_mib >= 1);
