-- Tell sidecar workers when who-is-calling facts change (account number, plan, status,
-- per-call cap, ANIs), so their account directory caches drop what they hold. Column lists
-- keep balance movements (every reservation and charge) from notifying anything.

CREATE FUNCTION apolo_accounts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('apolo_accounts', '');
    RETURN NULL;
END $$;

CREATE TRIGGER accounts_identity_changed
    AFTER UPDATE OF number, plan_id, type, status, max_call_cost OR DELETE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_accounts_changed();
CREATE TRIGGER account_anis_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON account_anis
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_accounts_changed();
CREATE TRIGGER rate_plans_cap_changed
    AFTER UPDATE OF max_call_cost ON rate_plans
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_accounts_changed();
