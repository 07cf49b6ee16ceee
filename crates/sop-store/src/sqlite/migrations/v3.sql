-- Version 3. Triggers that fired while their SOP was in cooldown: recorded as suppressed,
-- not queued (SPEC §6), for the metrics (SPEC §7) and the record of what was not run.
-- `cooldown_run`: the run whose start began the cooldown. Rows are never changed or
-- removed. A version 2 sop still running on the home ignores the table.
CREATE TABLE suppressed_triggers (
    seq          INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    sop          TEXT NOT NULL,
    trigger_type TEXT NOT NULL,
    sent_by      TEXT NOT NULL,
    cooldown_run TEXT NOT NULL
);
CREATE INDEX suppressed_triggers_by_at ON suppressed_triggers (at);

-- Notifications sent (SPEC §5: delivery failures are logged and audited): one row per
-- notice and channel. Rows are never changed or removed. The notifier's place in the
-- event ledger is the `meta` key `notify_cursor`.
CREATE TABLE notifications (
    seq      INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    run_id   TEXT NOT NULL,
    event    TEXT NOT NULL,
    channel  TEXT NOT NULL,
    ok       INTEGER NOT NULL,
    detail   TEXT NOT NULL
);
