-- Number normalization rules (issue #13): per rate plan, or per source (a FreeSWITCH
-- switch name, a CUCM cluster id), for callees and for callers, tried in position order;
-- the first that applies turns the number into E.164 digits (sidecar/rating/numbers.py).
-- A source's rules come first, then the plan's.
CREATE TABLE number_rules (
    id            bigserial PRIMARY KEY,
    plan_id       bigint REFERENCES rate_plans(id) ON DELETE CASCADE,
    source        text CHECK (source IN ('freeswitch', 'cucm')),
    source_name   text CHECK (source_name <> '' AND length(source_name) <= 200),
    direction     text NOT NULL CHECK (direction IN ('callee', 'caller')),
    position      integer NOT NULL CHECK (position >= 0),
    strip_prefix  text NOT NULL DEFAULT '' CHECK (strip_prefix ~ '^[+]?[0-9]{0,32}$'),
    add_prefix    text NOT NULL DEFAULT '' CHECK (add_prefix ~ '^[0-9]{0,32}$'),
    min_length    integer NOT NULL DEFAULT 1 CHECK (min_length >= 1),
    max_length    integer NOT NULL DEFAULT 32 CHECK (max_length <= 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (min_length <= max_length),
    -- owned by a plan, or by a source (kind and name)
    CHECK ((plan_id IS NULL) = (source IS NOT NULL) AND (source IS NULL) = (source_name IS NULL))
);
CREATE UNIQUE INDEX number_rules_plan_order ON number_rules (plan_id, direction, position)
    WHERE plan_id IS NOT NULL;
CREATE UNIQUE INDEX number_rules_source_order
    ON number_rules (source, source_name, direction, position) WHERE source IS NOT NULL;

-- what the sidecar workers compare to know their copy of the sources' rules is current
CREATE TABLE number_rules_version (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version   bigint NOT NULL
);
INSERT INTO number_rules_version (version) VALUES (1);

-- a plan's rules are part of its version (its index file holds them); sources' rules move
-- number_rules_version. Both are announced: apolo_rates (rating), apolo_accounts (callers'
-- rules decide which account a number matches)
CREATE FUNCTION apolo_number_rules_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_sources boolean;
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE rate_plans SET version = version + 1 WHERE id IN (SELECT plan_id FROM old_rows);
        SELECT bool_or(source IS NOT NULL) INTO v_sources FROM old_rows;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE rate_plans SET version = version + 1
         WHERE id IN (SELECT plan_id FROM new_rows UNION SELECT plan_id FROM old_rows);
        SELECT bool_or(source IS NOT NULL) INTO v_sources
          FROM (SELECT source FROM new_rows UNION ALL SELECT source FROM old_rows) x;
    ELSE
        UPDATE rate_plans SET version = version + 1 WHERE id IN (SELECT plan_id FROM new_rows);
        SELECT bool_or(source IS NOT NULL) INTO v_sources FROM new_rows;
    END IF;
    IF v_sources THEN
        UPDATE number_rules_version SET version = version + 1;
    END IF;
    PERFORM pg_notify('apolo_rates', '');
    PERFORM pg_notify('apolo_accounts', '');
    RETURN NULL;
END $$;
CREATE TRIGGER number_rules_changed_ins AFTER INSERT ON number_rules
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_number_rules_changed();
CREATE TRIGGER number_rules_changed_upd AFTER UPDATE ON number_rules
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_number_rules_changed();
CREATE TRIGGER number_rules_changed_del AFTER DELETE ON number_rules
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_number_rules_changed();
