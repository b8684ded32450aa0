-- A reservation and the CDR of its call stay consistent in whichever order they commit.
--
-- The switch gives up on an authorization after its own budget (the hook's APOLO_TIMEOUT_MS)
-- and posts the unanswered CDR of the refused call at once. While PostgreSQL fails over, the
-- authorization may still commit after that, when its connection finally comes: its
-- reservation then outlives the call (the CDR, stored first, found no reservation to close)
-- and would hold the money until it expires. `make ha-drill` met it.
--
-- Two deferred triggers run as each transaction commits and look for the other row: a
-- reservation whose call already has a CDR, and a CDR stored without a reservation while one
-- is open for its call, release that reservation (status 'released', the hold given back).
-- Both writers lock the account row first (apolo_reserve(), apolo_settle_cdrs()), so of two
-- such transactions one has committed before the other's trigger looks: the second sees the
-- first, in either order. A CDR's trigger runs only for CDRs stored without a reservation
-- (B legs, refused or unknown calls), one index probe each.

CREATE FUNCTION apolo_release_reservation(p_id bigint, p_why text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_account  bigint;
    v_amount   numeric;
BEGIN
    SELECT account_id INTO v_account FROM reservations WHERE id = p_id;
    -- lock order everywhere: the account, then its reservations
    PERFORM 1 FROM accounts WHERE id = v_account FOR UPDATE;
    UPDATE reservations SET status = 'released', closed_at = now(), close_reason = p_why
     WHERE id = p_id AND status = 'open'
    RETURNING amount INTO v_amount;
    IF FOUND THEN
        UPDATE accounts SET reserved = reserved - v_amount,
                            active_calls = greatest(active_calls - 1, 0)
         WHERE id = v_account;
    END IF;
END $$;

CREATE FUNCTION apolo_reservation_after_cdr() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM cdrs d WHERE d.call_uuid = NEW.call_uuid) THEN
        PERFORM apolo_release_reservation(NEW.id, 'the call''s CDR was stored before it');
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER reservation_after_cdr
    AFTER INSERT ON reservations DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION apolo_reservation_after_cdr();

CREATE FUNCTION apolo_cdr_before_reservation() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_id  bigint;
BEGIN
    SELECT r.id INTO v_id FROM reservations r
     WHERE r.call_uuid = NEW.call_uuid AND r.status = 'open';
    IF FOUND THEN
        PERFORM apolo_release_reservation(v_id, format('CDR %s was stored before it', NEW.id));
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER cdr_before_reservation
    AFTER INSERT ON cdrs DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.reservation_id IS NULL)
    EXECUTE FUNCTION apolo_cdr_before_reservation();
