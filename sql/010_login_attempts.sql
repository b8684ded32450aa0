-- The failed-login limit as one atomic step: an attempt is counted before its password is
-- checked, under the row locks of its keys, so N simultaneous attempts for one user get at
-- most the limit of password checks (read-then-count let 40 concurrent tries run 16).
--
-- p_keys / p_limits: the keys of this attempt ('user:<name>', 'addr:<address>') and the
-- failures each may have in a window of p_window_seconds. When every key is under its limit
-- the attempt is counted against all of them and 0 is returned: go ahead and check the
-- password (a success gives the count back, sidecar.repo.users.login_succeeded). Otherwise
-- nothing is counted and the answer is the seconds until the fullest key's window ends.
-- Keys are locked in key order, as every caller takes them, so two attempts never deadlock.
CREATE FUNCTION apolo_login_attempt(p_keys text[], p_limits integer[], p_window_seconds integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_window  interval := make_interval(secs => p_window_seconds);
    v_wait    integer;
BEGIN
    INSERT INTO login_failures (key, failures, window_start)
    SELECT k, 0, now() FROM unnest(p_keys) AS k ORDER BY k
    ON CONFLICT (key) DO NOTHING;
    PERFORM 1 FROM login_failures WHERE key = ANY (p_keys) ORDER BY key FOR UPDATE;
    UPDATE login_failures SET failures = 0, window_start = now()
     WHERE key = ANY (p_keys) AND window_start <= now() - v_window;
    SELECT max(ceil(extract(epoch FROM f.window_start + v_window - now())))::integer
      INTO v_wait
      FROM login_failures f
      JOIN unnest(p_keys, p_limits) AS l(key, max_failures) ON l.key = f.key
     WHERE f.failures >= l.max_failures;
    IF v_wait IS NOT NULL THEN
        RETURN greatest(v_wait, 1);
    END IF;
    UPDATE login_failures SET failures = failures + 1 WHERE key = ANY (p_keys);
    RETURN 0;
END $$;
