//! sop-store: the [`Store`] trait — every scheduling and gate decision as one store
//! transaction — and its `SQLite` implementation. The only crate with SQL.
//!
//! The engine never keeps run state in memory between transactions: it reads a run,
//! lets `sop-core` decide, and commits the result (and the events) atomically. A
//! `PostgreSQL` implementation only has to provide the same transactions.

mod error;
mod sqlite;

pub use error::StoreError;
pub use sqlite::{SqliteStore, Synchronous};

use serde::Serialize;
use sop_core::metrics::{RunFacts, SuppressedFact};
use sop_core::policy::{Admission, Blocked};
use sop_core::run::{Happened, Millis, Refusal, Run, RunStatus};

/// The run a driver claims with the commit that ends its own ([`Store::update_run_then_claim`]).
pub struct Successor<'a> {
    pub id: &'a str,
    /// The claiming process: the run becomes its.
    pub me: Owner,
    pub is_alive: &'a dyn Fn(Owner) -> bool,
    pub workers: u32,
    /// Asked inside the transaction, just before the claim: `false` (the claimer is
    /// stopping) leaves the run queued.
    pub wanted: &'a dyn Fn() -> bool,
}

/// The process that drives a run (runs its steps, waits at its gates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub pid: u32,
    /// Start time of the process (`/proc/<pid>/stat` field 22): a reused pid never matches.
    pub start_time: u64,
}

/// The answer to a request for a new run.
#[derive(Debug, Clone)]
pub enum Created {
    /// Committed as a queued run.
    New(Box<Run>),
    /// Not created: `coalesce` handed back an existing run, or the request was refused.
    NotCreated(Admission),
    /// Not created: this scheduled time was fired already (by another daemon, or before
    /// a restart).
    AlreadyFired,
}

/// A scheduled time of one of a SOP's schedule triggers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    pub sop: String,
    /// Tells the SOP's schedules apart (`<index>:<cron>:<time zone>`).
    pub trigger_key: String,
    pub scheduled_at: Millis,
}

/// Filter for listing runs.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub sop: Option<String>,
    pub statuses: Vec<RunStatus>,
    pub limit: Option<u32>,
}

/// A short view of a run for listings.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: String,
    pub sop: String,
    pub status: RunStatus,
    pub priority: sop_core::Priority,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub completed_at: Option<Millis>,
    pub owner: Option<Owner>,
    pub audit_path: Option<String>,
}

/// One stored event of a run's ledger.
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub run_id: String,
    pub at: Millis,
    pub event: Happened,
}

/// A chunk of live step output.
#[derive(Debug, Clone, Serialize)]
pub struct OutputChunk {
    pub seq: i64,
    pub gate: String,
    pub attempt: u32,
    pub text: String,
}

/// A trigger that fired while its SOP was in cooldown: recorded, not queued (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub sop: String,
    /// `command`, `file_watch`, `schedule`, `webhook`.
    pub trigger: String,
    /// Who sent it (a command line's sender).
    pub by: String,
    pub at: Millis,
    /// The run whose start began the cooldown.
    pub cooldown_run: String,
}

/// One notice sent (or not) to one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub at: Millis,
    pub run_id: String,
    /// `approval_needed`, `run_failed`, `run_succeeded`.
    pub event: String,
    /// `webhook`, `command`, `log`.
    pub channel: String,
    pub ok: bool,
    /// What went wrong, or what was done.
    pub detail: String,
}

/// What a walk of the event ledger found (`Store::verify_ledger`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerCheck {
    pub events: u64,
    /// The first event whose hash is not what its content and the chain before it give
    /// (it, or one before it, was altered, removed or moved).
    pub first_broken: Option<i64>,
    /// The newest event's `seq` and hash: note it to tell later that nothing was cut off.
    pub head: Option<(i64, String)>,
}

/// A pure change to one run (from `sop-core`), applied inside a store transaction.
pub type RunChange<'a> = dyn FnMut(&mut Run, &mut Vec<Happened>) -> Result<(), Refusal> + 'a;

/// Outcome of a claim: the run left the queue, or why it could not.
pub type ClaimResult = Result<(), Blocked>;

/// All durable state: runs, queue, gates, cooldowns, events, output.
pub trait Store: Send + Sync {
    /// Admits (cooldown, admission policy) and commits a queued run, in one transaction.
    /// `owner` is the process that will drive it (none: a driver is started afterwards).
    fn create_run(
        &self,
        run: Run,
        audit_path: &str,
        owner: Option<Owner>,
        now: Millis,
    ) -> Result<Created, StoreError>;

    /// [`Store::create_run`] for a scheduled time: recorded in the same transaction, and
    /// [`Created::AlreadyFired`] if it was recorded before (whatever was decided then).
    fn create_fired_run(
        &self,
        run: Run,
        audit_path: &str,
        now: Millis,
        fire: &Fire,
    ) -> Result<Created, StoreError>;

    /// The latest scheduled time recorded for a SOP's schedule, or when a daemon first saw
    /// it if that is later (`None`: never seen).
    fn last_fire(&self, sop: &str, trigger_key: &str) -> Result<Option<Millis>, StoreError>;

    /// Records when a daemon first saw a SOP's schedule (a later call changes nothing).
    fn note_schedule_seen(
        &self,
        sop: &str,
        trigger_key: &str,
        at: Millis,
    ) -> Result<(), StoreError>;

    fn load_run(&self, id: &str) -> Result<Option<Run>, StoreError>;

    /// Finds runs whose id starts with `prefix` (ids are long; operators type the start).
    fn find_run_ids(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError>;

    fn run_row(&self, id: &str) -> Result<Option<RunRow>, StoreError>;

    /// Reads, changes and commits one run in one transaction. `change` is pure (sop-core);
    /// when it refuses, or changes nothing, nothing is written. Returns the run after.
    fn update_run(
        &self,
        id: &str,
        now: Millis,
        change: &mut RunChange<'_>,
    ) -> Result<Result<Run, Refusal>, StoreError>;

    /// Like [`Store::update_run`], but the commit need not survive a power loss (it does
    /// survive a crash of this process, and any later durable commit makes it durable too).
    /// Only for facts that mean nothing after a reboot, such as the pid of a step process:
    /// after a power loss the step is `interrupted` whether or not its pid was kept.
    fn update_run_unsynced(
        &self,
        id: &str,
        now: Millis,
        change: &mut RunChange<'_>,
    ) -> Result<Result<Run, Refusal>, StoreError> {
        self.update_run(id, now, change)
    }

    /// Takes a queued run out of the queue if the scheduling policy lets it start now.
    /// One transaction. A run that is not queued is left as it is.
    fn claim(&self, id: &str, workers: u32, now: Millis) -> Result<ClaimResult, StoreError>;

    /// [`Store::update_run`] of `id`; if that ends the run, in the same transaction (one
    /// commit, one sync) the run `next` is claimed for `me` as by [`Store::claim_and`] —
    /// when it is queued, owned by no other live process (`is_alive`), and the policy lets
    /// it start — and becomes `me`'s. Returns the update's result and `next` as claimed
    /// and walked (`None`: not claimed, left as it was). A driver whose run ends so hands its
    /// worker slot straight to the next run.
    fn update_run_then_claim(
        &self,
        id: &str,
        now: Millis,
        change: &mut RunChange<'_>,
        next: &Successor<'_>,
        then: &mut RunChange<'_>,
    ) -> Result<(Result<Run, Refusal>, Option<Run>), StoreError>;

    /// [`Store::claim`], then `then` (the engine's walk to the first step) in the same
    /// transaction, so a run starts with one commit instead of two. The run after both
    /// (`None`: it was not queued, nothing was done). A refusal by `then` keeps the claim.
    fn claim_and(
        &self,
        id: &str,
        workers: u32,
        now: Millis,
        then: &mut RunChange<'_>,
    ) -> Result<Result<Option<Run>, Blocked>, StoreError>;

    /// Why a queued run cannot start now (`None`: it can). Reads only.
    fn claim_preview(
        &self,
        id: &str,
        workers: u32,
        now: Millis,
    ) -> Result<Option<sop_core::policy::Blocked>, StoreError>;

    /// Makes `me` the process that drives run `id`, unless another live process already
    /// does (`is_alive` tells, by pid and start time). One transaction, so of several
    /// processes racing for an orphaned run exactly one wins. Returns the owner after. An
    /// ended run is nobody's: `me` is returned and nothing is written.
    fn acquire(
        &self,
        id: &str,
        me: Owner,
        is_alive: &dyn Fn(Owner) -> bool,
    ) -> Result<Owner, StoreError>;

    /// Clears the owner of `id` if it is `me`.
    fn release(&self, id: &str, me: Owner) -> Result<(), StoreError>;

    /// Active runs (not terminal) with their owners, for crash recovery.
    fn active_runs(&self) -> Result<Vec<RunRow>, StoreError>;

    fn append_output(
        &self,
        run_id: &str,
        gate: &str,
        attempt: u32,
        text: &str,
    ) -> Result<(), StoreError>;

    fn output_since(&self, run_id: &str, after_seq: i64) -> Result<Vec<OutputChunk>, StoreError>;

    fn events_since(&self, run_id: &str, after_seq: i64) -> Result<Vec<EventRow>, StoreError>;

    /// The first `limit` queued runs in queue order (priority, then age).
    fn queue_head(&self, limit: u32) -> Result<Vec<RunRow>, StoreError>;

    /// Waiting runs whose approval deadline is at or before `now`.
    fn due_deadlines(&self, now: Millis) -> Result<Vec<String>, StoreError>;

    /// Changes whenever any process commits: a cheap "did anything happen" check.
    fn change_counter(&self) -> Result<i64, StoreError>;

    /// Proves the store can be written (for health checks).
    fn check_writable(&self) -> Result<(), StoreError>;

    /// The newest event's `seq` (0 without events). Every event committed later has a
    /// greater `seq` (`SQLite`: rowids, never removed, taken in commit order as writers take
    /// turns; another store must give `seq`s in commit order too: the settle marks rely on
    /// it).
    fn last_event_seq(&self) -> Result<i64, StoreError>;

    /// Ids of the ended runs with an event after `after_seq`, in the order they ended.
    fn ended_since(&self, after_seq: i64) -> Result<Vec<String>, StoreError>;

    /// The settle marks of processes that make ended runs' audit files durable in groups
    /// (`sop serve`), as event `seq`s: a run such a process ended whose events are all at
    /// or before its mark has a durable audit file. A mark outlives a process that stopped
    /// without settling.
    fn settle_marks(&self) -> Result<Vec<(Owner, i64)>, StoreError>;

    /// Sets `owner`'s settle mark (durably), or removes it (`None`).
    fn set_settle_mark(&self, owner: Owner, through: Option<i64>) -> Result<(), StoreError>;

    /// Ledger events after `after_seq`, oldest first, at most `limit`, each with its run's
    /// SOP name; an event this build cannot read is skipped (and logged).
    fn events_after(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<(EventRow, String)>, StoreError>;

    /// The notifier's place in the ledger (`None`: it never ran on this store).
    fn notify_cursor(&self) -> Result<Option<i64>, StoreError>;

    /// Moves the notifier's place (need not survive a power loss: notices are sent at least
    /// once).
    fn set_notify_cursor(&self, seq: i64) -> Result<(), StoreError>;

    /// Records a notification sent, or one that failed.
    fn record_delivery(&self, d: &Delivery) -> Result<(), StoreError>;

    /// Walks the whole event ledger, recomputing its hash chain.
    fn verify_ledger(&self) -> Result<LedgerCheck, StoreError>;

    /// Records (durably) a trigger suppressed by its SOP's cooldown.
    fn record_suppression(&self, s: &Suppression) -> Result<(), StoreError>;

    /// What the metrics need, from one snapshot: the runs created at or after `since`, and
    /// the triggers suppressed at or after it (everything: `None`); of SOP `sop` only, if
    /// given.
    fn metric_facts(
        &self,
        since: Option<Millis>,
        sop: Option<&str>,
    ) -> Result<(Vec<RunFacts>, Vec<SuppressedFact>), StoreError>;
}
