-- Outgoing HTTP grants (host/src/outbound.rs): the `scheme://host[:port]`
-- entries a deploy named with `allow-outbound`, kept with the version, so a
-- rollback brings back the grant the version was deployed with. Empty: the
-- version may send no request (every version deployed before this).
ALTER TABLE versions ADD COLUMN allowed_outbound text[] NOT NULL DEFAULT '{}';
