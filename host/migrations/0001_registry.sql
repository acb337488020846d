-- The registry replicas share: module bytes by sha256, each name's version
-- history, which version serves, and the change log replicas follow.
-- Applied once, in a transaction, by the first replica that starts on an
-- empty database (host/src/store_pg.rs records it in schema_migrations).

-- Module bytes, content-addressed; removed once no kept version uses them.
CREATE TABLE modules (
    sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes  bytea  NOT NULL,
    size   bigint NOT NULL
);

-- One row per name ever deployed: the highest version number it was given
-- (never reused, also after a DELETE) and the version serving now (NULL:
-- removed).
CREATE TABLE procedures (
    name         text   PRIMARY KEY,
    last_version bigint NOT NULL CHECK (last_version > 0),
    serving      bigint NULL
);

-- The kept versions of each name (at most --keep-versions, the serving one
-- always among them).
CREATE TABLE versions (
    name        text        NOT NULL REFERENCES procedures (name),
    version     bigint      NOT NULL CHECK (version > 0),
    sha256      text        NOT NULL REFERENCES modules (sha256),
    size        bigint      NOT NULL,
    deployed_at timestamptz NOT NULL,
    -- The module's `describe` output, so a replica need not run it again.
    describe    text        NOT NULL,
    PRIMARY KEY (name, version)
);

-- Every change (publish, activate, unpublish), in commit order: a replica
-- reads the rows after the last one it applied.
CREATE TABLE changes (
    id   bigserial   PRIMARY KEY,
    name text        NOT NULL,
    at   timestamptz NOT NULL DEFAULT now()
);
