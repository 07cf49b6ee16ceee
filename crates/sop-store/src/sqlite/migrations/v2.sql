-- Version 2. A run's row keeps only its head (`doc`: the run without its SOP and step
-- records). The SOP snapshot is stored once per distinct content and shared by every run
-- of it; each step record (main, rollback, verification gate) is a row of its own. A
-- transition so writes the head and the records it changed, whatever the run's length.
ALTER TABLE runs ADD COLUMN sop_hash TEXT NOT NULL DEFAULT '';

-- SOP snapshots by the SHA-256 of their JSON. Never changed or removed.
-- Documents are large: they live in rowid tables, with their keys in separate indexes. (In
-- a WITHOUT ROWID table the whole row is the key, and SQLite reads a large key's overflow
-- pages to compare it: writing one record then read megabytes of other runs' output.)
CREATE TABLE sop_snapshots (
    hash TEXT NOT NULL UNIQUE,
    doc  TEXT NOT NULL
);

-- Step records. `slot`: `main:<index>`, `rollback:<index>` or `gate:<name>`.
CREATE TABLE run_records (
    run_id TEXT NOT NULL,
    slot   TEXT NOT NULL,
    doc    TEXT NOT NULL,
    UNIQUE (run_id, slot)
);

-- Indexes that cover the queue order whole (with `id`, the last tie-breaker), so walking
-- the queue or a SOP's queue reads the head of an index instead of sorting every queued
-- run; and one for listings, newest first.
DROP INDEX runs_by_status;
CREATE INDEX runs_by_status ON runs (status, priority DESC, created_at, id);
DROP INDEX runs_by_sop;
CREATE INDEX runs_by_sop ON runs (sop, status, priority DESC, created_at, id);
CREATE INDEX runs_by_created ON runs (created_at DESC, id DESC);

-- Events and output take plain rowids: AUTOINCREMENT wrote `sqlite_sequence` on every
-- insert. Rows are never deleted, so a new rowid is always above every earlier one and
-- `seq` stays increasing (SSE's `Last-Event-ID` relies on it).
CREATE TABLE events_v2 (
    seq     INTEGER PRIMARY KEY,
    run_id  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    body    TEXT NOT NULL
);
INSERT INTO events_v2 (seq, run_id, at, body) SELECT seq, run_id, at, body FROM events;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
CREATE INDEX events_by_run ON events (run_id, seq);

CREATE TABLE output_v2 (
    seq     INTEGER PRIMARY KEY,
    run_id  TEXT NOT NULL,
    gate    TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    text    TEXT NOT NULL
);
INSERT INTO output_v2 (seq, run_id, gate, attempt, text) SELECT seq, run_id, gate, attempt, text FROM output;
DROP TABLE output;
ALTER TABLE output_v2 RENAME TO output;
CREATE INDEX output_by_run ON output (run_id, seq);

-- A sop built for schema 1, still running on this home during an upgrade, would insert
-- whole runs without a snapshot: refused, with the reason.
CREATE TRIGGER runs_need_schema_2 BEFORE INSERT ON runs WHEN NEW.sop_hash = ''
BEGIN
    SELECT RAISE(ABORT, 'this home''s store was upgraded to schema 2 by a newer sop: stop this sop and use the newer one');
END;
