-- Version 1. Runs keep their whole record as JSON in `doc` (version 2 splits it); the other columns are the
-- facts the scheduler queries, kept in step with `doc` by every write.
CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    sop           TEXT NOT NULL,
    status        TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    completed_at  INTEGER,
    executed_step INTEGER NOT NULL DEFAULT 0,
    deadline      INTEGER,          -- approval deadline of a waiting run
    limits        TEXT NOT NULL,
    owner_pid     INTEGER,
    owner_start   INTEGER,
    version       INTEGER NOT NULL,
    audit_path    TEXT,
    doc           TEXT NOT NULL
);
CREATE INDEX runs_by_status ON runs (status, priority DESC, created_at);
CREATE INDEX runs_by_sop ON runs (sop, status);
CREATE INDEX runs_by_sop_executed ON runs (sop, executed_step, started_at);
CREATE INDEX runs_by_deadline ON runs (deadline) WHERE deadline IS NOT NULL;

-- Append-only ledger of everything that happened to a run.
CREATE TABLE events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    body    TEXT NOT NULL
);
CREATE INDEX events_by_run ON events (run_id, seq);

-- Live step output, appended in chunks as it arrives.
CREATE TABLE output (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT NOT NULL,
    gate    TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    text    TEXT NOT NULL
);
CREATE INDEX output_by_run ON output (run_id, seq);

-- A counter bumped by every write transaction, so waiters notice any change cheaply.
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('changes', 0);
