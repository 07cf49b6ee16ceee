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

-- Scheduled times fired (SPEC §6: each fire is recorded once per SOP and scheduled time,
-- even with several daemons): inserted in the transaction that creates the run (or finds
-- the SOP in cooldown), so a second daemon's insert finds the row and creates nothing.
-- `trigger_key` says which of the SOP's schedules (`<index>:<cron>:<time zone>`) fired
-- it; two schedules of a SOP at one time fire once.
CREATE TABLE schedule_fires (
    sop          TEXT NOT NULL,
    scheduled_at INTEGER NOT NULL,
    trigger_key  TEXT NOT NULL,
    PRIMARY KEY (sop, scheduled_at)
);
CREATE INDEX schedule_fires_by_key ON schedule_fires (sop, trigger_key, scheduled_at);

-- When a daemon first saw each schedule: times missed after it (while no daemon ran)
-- follow `catch_up`, also before the schedule's first fire.
CREATE TABLE schedule_seen (
    sop         TEXT NOT NULL,
    trigger_key TEXT NOT NULL,
    seen_at     INTEGER NOT NULL,
    PRIMARY KEY (sop, trigger_key)
);

-- The event ledger is hash-chained (SPEC §7): `hash` = sha256 of the previous event's hash
-- and this event (`ledger.rs` says exactly what), so an event altered, removed or moved
-- shows. Events of schema 2 get theirs as the migration runs (`migrate.rs`); a schema 2
-- sop still running on the home could only add events without one: refused, with why.
ALTER TABLE events ADD COLUMN hash TEXT;
CREATE TRIGGER events_need_hash BEFORE INSERT ON events WHEN NEW.hash IS NULL
BEGIN
    SELECT RAISE(ABORT, 'this home''s store was upgraded to schema 3 by a newer sop: stop this sop and use the newer one');
END;
