-- Procedures' key-value state (wasi:keyvalue) in the shared registry, so
-- every replica reads what any other wrote (host/src/kv/pg.rs uses it).
--
-- Plans: every statement here has an index to use, and must use it at any
-- table size. The client's sessions run with enable_seqscan = off (a plan
-- cached while a table was tiny would otherwise scan it ever after); the
-- functions that take arrays of keys plan each call for its own array
-- (a generic plan for `key = ANY (ks)` filters the whole bucket).
--
-- Bucket names and keys are Rust strings, which may hold NUL (text cannot):
-- they are kept as their UTF-8 bytes in bytea, whose order is bytewise, the
-- order listings promise. A procedure's writes take its `kv_usage` row's
-- lock first (kv_lock), so they apply one at a time and the counts below
-- stay exact; reads take no lock.

-- The data: (procedure, bucket, key) -> value.
CREATE TABLE kv_data (
    procedure text COLLATE "C" NOT NULL,
    bucket    bytea NOT NULL,
    key       bytea NOT NULL,
    value     bytea NOT NULL,
    PRIMARY KEY (procedure, bucket, key)
);

-- Each bucket's keys and bytes (keys + values), updated in the transaction
-- that changes its data; no row for a bucket without keys.
CREATE TABLE kv_buckets (
    procedure text COLLATE "C" NOT NULL,
    bucket    bytea  NOT NULL,
    keys      bigint NOT NULL CHECK (keys > 0),
    bytes     bigint NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (procedure, bucket)
);

-- Each procedure's bytes over all its buckets (what --kv-quota-mib counts).
-- The row is also the procedure's write lock; it stays (at 0) when the
-- last key goes, and erasing the procedure removes it.
CREATE TABLE kv_usage (
    procedure text COLLATE "C" PRIMARY KEY,
    bytes     bigint NOT NULL CHECK (bytes >= 0)
);

-- Locks `p`'s usage row for the rest of the transaction (making it if
-- absent) and answers its bytes. A writer waits at most 8 s for the lock
-- (the client gives up on the whole write after 10 s): no abandoned wait
-- lingers in the queue.
CREATE FUNCTION kv_lock(p text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET lock_timeout = '8s' AS $$
DECLARE
    used bigint;
BEGIN
    LOOP
        SELECT u.bytes INTO used FROM kv_usage u WHERE u.procedure = p FOR UPDATE;
        IF FOUND THEN
            RETURN used;
        END IF;
        -- Absent (or erased while this waited): make it. A concurrent
        -- maker wins the conflict and the next round locks its row.
        INSERT INTO kv_usage (procedure, bytes) VALUES (p, 0) ON CONFLICT (procedure) DO NOTHING;
    END LOOP;
END
$$;

-- The start of a write: locks `p` (kv_lock), then reads the current values
-- of `ks` in bucket `b`. The read is a statement of its own, after the
-- lock, so (READ COMMITTED) it sees every write committed before it.
-- The first row carries the procedure's bytes (o_key NULL); one row follows
-- per key present.
CREATE FUNCTION kv_begin_write(p text, b bytea, ks bytea[])
RETURNS TABLE (o_used bigint, o_key bytea, o_value bytea)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    used bigint := kv_lock(p);
BEGIN
    RETURN QUERY SELECT used, NULL::bytea, NULL::bytea;
    RETURN QUERY SELECT NULL::bigint, d.key, d.value FROM kv_data d
        WHERE d.procedure = p AND d.bucket = b AND d.key = ANY (ks);
END
$$;

-- The values of keys `ks` in bucket `b` (absent keys: no row), for reads.
CREATE FUNCTION kv_read(p text, b bytea, ks bytea[])
RETURNS TABLE (o_key bytea, o_value bytea)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    RETURN QUERY SELECT d.key, d.value FROM kv_data d
        WHERE d.procedure = p AND d.bucket = b AND d.key = ANY (ks);
END
$$;

-- Under kv_lock: adds `dkeys` and `dbytes` to bucket `b`'s counts and
-- makes `used` the procedure's bytes.
CREATE FUNCTION kv_count(p text, b bytea, dkeys bigint, dbytes bigint, used bigint) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF dkeys = 0 AND dbytes = 0 THEN
        RETURN;
    END IF;
    -- A bucket whose last key goes loses its row.
    DELETE FROM kv_buckets kb WHERE kb.procedure = p AND kb.bucket = b AND kb.keys + dkeys <= 0;
    IF NOT FOUND THEN
        -- No upsert: its proposed row (dkeys = 0 when only bytes change)
        -- would be checked before the conflict. Under the lock nobody else
        -- makes this bucket's row meanwhile.
        UPDATE kv_buckets kb SET keys = kb.keys + dkeys, bytes = kb.bytes + dbytes
            WHERE kb.procedure = p AND kb.bucket = b;
        IF NOT FOUND THEN
            INSERT INTO kv_buckets (procedure, bucket, keys, bytes) VALUES (p, b, dkeys, dbytes);
        END IF;
    END IF;
    UPDATE kv_usage u SET bytes = used WHERE u.procedure = p;
END
$$;

-- The end of a list's write, under kv_lock: sets `ks` to `vs`, deletes
-- `dels`, and counts (kv_count).
CREATE FUNCTION kv_finish_write(
    p text, b bytea, ks bytea[], vs bytea[], dels bytea[], dkeys bigint, dbytes bigint, used bigint
) RETURNS void
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    IF cardinality(ks) > 0 THEN
        INSERT INTO kv_data (procedure, bucket, key, value)
            SELECT p, b, u.k, u.v FROM unnest(ks, vs) AS u(k, v)
            ON CONFLICT (procedure, bucket, key) DO UPDATE SET value = EXCLUDED.value;
    END IF;
    IF cardinality(dels) > 0 THEN
        DELETE FROM kv_data d WHERE d.procedure = p AND d.bucket = b AND d.key = ANY (dels);
    END IF;
    PERFORM kv_count(p, b, dkeys, dbytes, used);
END
$$;

-- One write in one statement (a call's single write, the usual case): the
-- lock is held for this statement and its commit only, no round trip to
-- the client. The same rules as host/src/kv/pg.rs's `plan`:
--   op 's' sets `v`, 'd' deletes, 'i' adds `delta` (absent: 0), 'w' sets
--   `v` if the value is `expected` (NULL: absent);
--   a growing write past `quota` bytes is refused.
-- Answers (status, counter, value, would):
--   ('done'), ('counter', n), ('swap_failed', -, current value or NULL),
--   ('quota', -, -, bytes the write would have made), ('overflow'), or
--   ('defer') when an increment finds a value other than plain decimal
--   digits (whitespace, Unicode, a non-number, 19 digits or more): the
--   client then applies the write itself under the lock (`plan`), with
--   Rust's parsing rules, and nothing here has changed.
CREATE FUNCTION kv_write_one(
    p text, b bytea, op "char", k bytea, v bytea, expected bytea, delta bigint, quota bigint
) RETURNS TABLE (o_status text, o_counter bigint, o_value bytea, o_would bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    used bigint := kv_lock(p);
    was bytea;
    becomes bytea;
    n numeric;
    old_size bigint;
    new_size bigint;
    would bigint;
BEGIN
    SELECT d.value INTO was FROM kv_data d WHERE d.procedure = p AND d.bucket = b AND d.key = k;
    IF op = 's' THEN
        becomes := v;
    ELSIF op = 'd' THEN
        becomes := NULL;
    ELSIF op = 'w' THEN
        IF expected IS DISTINCT FROM was THEN
            RETURN QUERY SELECT 'swap_failed', NULL::bigint, was, NULL::bigint;
            RETURN;
        END IF;
        becomes := v;
    ELSIF op = 'i' THEN
        IF was IS NULL THEN
            n := delta;
        ELSIF encode(was, 'escape') ~ '^[+-]?[0-9]{1,18}$' THEN
            n := encode(was, 'escape')::numeric + delta;
        ELSE
            RETURN QUERY SELECT 'defer', NULL::bigint, NULL::bytea, NULL::bigint;
            RETURN;
        END IF;
        IF n < -9223372036854775808 OR n > 9223372036854775807 THEN
            RETURN QUERY SELECT 'overflow', NULL::bigint, NULL::bytea, NULL::bigint;
            RETURN;
        END IF;
        becomes := convert_to(n::bigint::text, 'UTF8');
    ELSE
        RAISE EXCEPTION 'kv_write_one: unknown op %', op;
    END IF;
    old_size := coalesce(length(k) + length(was), 0);
    new_size := coalesce(length(k) + length(becomes), 0);
    would := greatest(used - old_size, 0) + new_size;
    IF new_size > old_size AND would > quota THEN
        RETURN QUERY SELECT 'quota', NULL::bigint, NULL::bytea, would;
        RETURN;
    END IF;
    IF becomes IS NULL THEN
        IF was IS NOT NULL THEN
            DELETE FROM kv_data d WHERE d.procedure = p AND d.bucket = b AND d.key = k;
        END IF;
    ELSIF was IS NULL THEN
        INSERT INTO kv_data (procedure, bucket, key, value) VALUES (p, b, k, becomes);
    ELSIF was <> becomes THEN
        UPDATE kv_data d SET value = becomes WHERE d.procedure = p AND d.bucket = b AND d.key = k;
    END IF;
    PERFORM kv_count(
        p, b, (becomes IS NOT NULL)::int - (was IS NOT NULL)::int, new_size - old_size, would
    );
    IF op = 'i' THEN
        RETURN QUERY SELECT 'counter', n::bigint, NULL::bytea, NULL::bigint;
    ELSE
        RETURN QUERY SELECT 'done', NULL::bigint, NULL::bytea, NULL::bigint;
    END IF;
END
$$;
