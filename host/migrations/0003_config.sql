-- Procedures' configuration (wasi:config/store): variables and secrets per
-- procedure name, set through the admin API (host/src/vars/pg.rs). A change
-- is one transaction under the registry's write lock that also adds a row
-- to `changes` and notifies `wasmrpc_changes`: replicas following the log
-- drop the name from their cache and read it again at its next `get`.
--
-- Secrets are kept as text, like everything else here: whoever can read
-- this database can read them (and deploy code), so protect it as such.
CREATE TABLE proc_config (
    name   text COLLATE "C" NOT NULL,
    key    text COLLATE "C" NOT NULL,
    value  text    NOT NULL,
    secret boolean NOT NULL,
    PRIMARY KEY (name, key)
);
