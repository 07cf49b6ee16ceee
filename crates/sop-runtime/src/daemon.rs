//! The scheduler of `sop serve`: recovers orphaned runs, applies deadlines, and starts
//! queued runs in queue order on driver threads, up to `workers`. The decision whether a
//! run may start stays in `sop-core::policy`, applied by the store's `claim` transaction;
//! this loop only finds candidates and supplies threads.
//!
//! A driver thread returns as soon as its run waits at a gate or cannot claim a slot
//! (`release_when_idle`), so waiting runs cost no thread; a decision or a finished run
//! wakes the loop (if a worker is free: nothing can start before), which hands released
//! runs to its driver threads.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sop_core::config::RunnerConfig;
use sop_core::policy::Blocked;
use sop_core::run::RunStatus;
use sop_store::{Owner, Store};

use crate::clock::now;
use sop_core::run::{Action, Run};

use crate::audit::Settler;
use crate::engine::{self, owner_alive, Context, Handover, Quiet};
use crate::home::Home;
use crate::recovery;

/// How often the loop looks at the store when nothing woke it (changes made by other
/// processes on the same home, deadlines).
const IDLE_TICK: Duration = Duration::from_millis(20);

/// How many queued runs a quick pass (between full sweeps) reads first, and at most.
const QUICK_FIRST: u32 = 4;
const QUICK_HEAD: u32 = 64;

/// How far a pass over the queue got.
#[derive(Debug, PartialEq, Eq)]
enum Pass {
    /// Nothing behind the rows seen can start now (workers busy, or runs wait behind one).
    Decided,
    /// Every row seen was skipped: runs further back might start.
    Open,
}

/// Shared between the loop, its driver threads and whoever wakes it.
struct Shared {
    store: Arc<dyn Store>,
    home: Home,
    config: RunnerConfig,
    owner: Owner,
    stop: AtomicBool,
    woken: Mutex<bool>,
    bell: Condvar,
    /// Runs handed to a driver (or reserved by one, see [`Handover`]): at most `workers`
    /// of them hold a slot.
    active: Mutex<HashSet<String>>,
    /// Work for the driver threads (started by [`Scheduler::run`]; a thread per run cost a
    /// thread start and stop per run). `None` once the scheduler stops.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// Makes ended runs' audit files durable in groups; set by [`Scheduler::run`] once its
    /// mark is committed (never with `audit_group_ms = 0`).
    settler: Arc<OnceLock<Arc<Settler>>>,
}

/// What a driver thread is handed.
enum Job {
    /// A queued run (or one released at a gate) to acquire and drive.
    Drive(String),
    /// A run this driver's last commit claimed for this process, and its next action.
    Claimed(Box<(Run, Action)>),
}

thread_local! {
    /// The run this driver thread's last commit claimed: driven next, on this thread.
    static CLAIMED: std::cell::RefCell<Option<Job>> = const { std::cell::RefCell::new(None) };
    /// Runs this driver thread's commits ended, whose last work waits until the step of the
    /// run claimed with them has started ([`Handover::finish_later`]).
    static ENDED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What is left of the runs this driver thread ended ([`engine::finish_ended`]).
fn finish_ended_here(shared: &Shared) {
    let ended = ENDED.with(|e| std::mem::take(&mut *e.borrow_mut()));
    for id in ended {
        finish_one(shared, &id);
    }
}

impl Shared {
    /// Wakes the loop if a worker is free. With every worker busy a pass can start nothing
    /// (queued runs, and runs going on after a decision, wait for a worker), and a driver
    /// that frees its worker rings after it did; the loop's own sweeps (deadlines,
    /// recovery) come with its ticks. So the executes and ended runs of a busy daemon do
    /// not wake the loop for nothing (~3 context switches per run).
    fn ring(&self) {
        if self.active().len() < self.config.workers as usize {
            self.wake();
        }
    }

    /// Wakes the loop.
    fn wake(&self) {
        let mut woken = self.woken.lock().unwrap_or_else(PoisonError::into_inner);
        // Already rung: the loop sees it before it waits again (it waits only while the
        // flag is down, under this lock).
        if !*woken {
            *woken = true;
            self.bell.notify_all();
        }
    }

    /// Whether another live process (a foreground `sop run`) owns the run of `row`.
    fn driven_elsewhere(&self, row: &sop_store::RunRow) -> bool {
        row.owner.is_some_and(|o| o != self.owner && owner_alive(o))
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `job` to a driver thread (a run to drive is in `active` already); `false` if
    /// the scheduler has stopped.
    fn send(&self, job: Job) -> bool {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok())
    }
}

/// A driver whose run ends claims the head of the queue in the same commit.
impl Handover for Shared {
    fn reserve(&self) -> Option<String> {
        if self.stop.load(Ordering::SeqCst) {
            return None;
        }
        let rows = self.store.queue_head(QUICK_FIRST).ok()?;
        let mut active = self.active();
        let row = rows.into_iter().find(|row| {
            row.status == RunStatus::Queued
                && !active.contains(&row.id)
                && !self.driven_elsewhere(row)
        })?;
        active.insert(row.id.clone());
        Some(row.id)
    }

    fn claimed(&self, run: Run, action: Action) {
        // Called on the driver thread that committed: it drives the run next.
        CLAIMED.with(|next| *next.borrow_mut() = Some(Job::Claimed(Box::new((run, action)))));
    }

    fn finish_later(&self, id: &str) -> bool {
        // Done on this thread, which goes on with the claimed run: while its step runs, or
        // before the thread sleeps, waits or waits for work (a thread woken to write it
        // cost two thread switches per run). One at a time: a run deferred before and not
        // finished yet (the claimed run's step did not start) is finished first.
        finish_ended_here(self);
        ENDED.with(|e| e.borrow_mut().push(id.to_string()));
        true
    }

    fn finish_deferred(&self) {
        finish_ended_here(self);
    }

    fn unreserve(&self, id: &str) {
        self.active().remove(id);
        self.ring();
    }
}

/// The scheduler. Clone-free: share it through an `Arc`.
pub struct Scheduler {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Scheduler {
    pub fn new(store: Arc<dyn Store>, home: Home, config: RunnerConfig) -> Scheduler {
        Scheduler {
            shared: Arc::new(Shared {
                store,
                home,
                config,
                owner: engine::this_process(),
                stop: AtomicBool::new(false),
                woken: Mutex::new(false),
                bell: Condvar::new(),
                active: Mutex::new(HashSet::new()),
                jobs: Mutex::new(None),
                settler: Arc::new(OnceLock::new()),
            }),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Where this daemon's [`Settler`] is, once [`Scheduler::run`] has started it: for the
    /// API's operations, whose commits may end runs too.
    pub fn settler_slot(&self) -> Arc<OnceLock<Arc<Settler>>> {
        Arc::clone(&self.shared.settler)
    }

    /// A function that wakes the loop (after a new run, a decision, a cancel) if a worker
    /// is free (see `Shared::ring`).
    pub fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let shared = Arc::clone(&self.shared);
        Arc::new(move || shared.ring())
    }

    /// Asks the loop to drain: no new run starts; running steps are stopped (SIGTERM, the
    /// kill grace, SIGKILL) and recorded `interrupted`.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake();
    }

    /// Runs until [`Scheduler::stop`], then waits for the driver threads to finish.
    pub fn run(&self) {
        match recovery::repair_queued_audit(&*self.shared.store, &self.shared.home) {
            Ok(0) => {}
            Ok(n) => tracing::warn!("rewrote the audit files of {n} queued runs (lost or torn)"),
            Err(e) => tracing::warn!("scheduler: checking queued runs' audit files: {e}"),
        }
        let settling = self.start_settler();
        self.start_drivers();
        let mut last_change = None;
        let mut last_sweep = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        let workers = self.shared.config.workers as usize;
        while !self.shared.stop.load(Ordering::SeqCst) {
            let woken = std::mem::take(
                &mut *self
                    .shared
                    .woken
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            // A full sweep (recovery, deadlines, the whole queue) once a second; in between,
            // a wake-up or another process's commit only looks at the head of the queue ...
            let full = last_sweep.elapsed() >= Duration::from_secs(1);
            // ... and only while a worker is free: nothing can start before one is, and a
            // driver that frees its worker rings. (Every commit of a busy daemon changes
            // the counter, and each execute rings: reading the counter for them took turns
            // at the store with the drivers.) The first pass with a free worker looks.
            let change = if full || self.active_count() < workers {
                self.shared.store.change_counter().ok()
            } else {
                last_change = None;
                None
            };
            if full || ((woken || change != last_change) && self.active_count() < workers) {
                last_change = change;
                if full {
                    last_sweep = Instant::now();
                }
                if let Err(e) = self.tick(full) {
                    tracing::warn!("scheduler: {e}");
                }
            }
            let guard = self
                .shared
                .woken
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !*guard {
                let _ = self.shared.bell.wait_timeout(guard, IDLE_TICK);
            }
        }
        // No more runs for the drivers: each finishes its run (stopping its step) and ends.
        drop(
            self.shared
                .jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
        // No driver can end a run now: the last group is settled.
        if let Some(settling) = settling {
            if let Some(settler) = self.shared.settler.get() {
                settler.stop();
            }
            let _ = settling.join();
        }
    }

    /// Repairs what a previous `sop serve` left unsettled, then starts this one's
    /// [`Settler`] thread (unless `audit_group_ms = 0`, or its mark cannot be committed:
    /// each run's file is then synced as it ends).
    fn start_settler(&self) -> Option<JoinHandle<()>> {
        let shared = &self.shared;
        match recovery::repair_unsettled_audit(&*shared.store, &shared.home, shared.owner) {
            Ok(0) => {}
            Ok(n) => tracing::warn!("rewrote the audit files of {n} runs ended before a crash"),
            Err(e) => tracing::warn!("scheduler: checking ended runs' audit files: {e}"),
        }
        if shared.config.audit_group_ms == 0 {
            return None;
        }
        let settler = Arc::new(Settler::new(
            Arc::clone(&shared.store),
            shared.owner,
            shared.home.clone(),
            Duration::from_millis(shared.config.audit_group_ms),
        ));
        if let Err(e) = settler.begin() {
            tracing::warn!("audit: cannot commit a settle mark ({e}); each audit file is synced as its run ends");
            return None;
        }
        let running = Arc::clone(&settler);
        let started = std::thread::Builder::new()
            .name("sop-settle".to_string())
            .spawn(move || running.run());
        match started {
            Ok(t) => {
                // Only now do drivers hand it files.
                let _ = shared.settler.set(settler);
                Some(t)
            }
            Err(e) => {
                tracing::error!("cannot start the audit settle thread ({e}); each audit file is synced as its run ends");
                settler.abandon();
                None
            }
        }
    }

    /// Starts the driver threads, each driving the runs it is handed in turn (first the run
    /// its own last commit claimed, if any): twice `workers`, so a run the scheduler hands
    /// out never waits for a thread still finishing what its last drive left
    /// ([`Handover::finish_later`]).
    fn start_drivers(&self) {
        let (send, receive) = mpsc::channel::<Job>();
        let receive = Arc::new(Mutex::new(receive));
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        for n in 0..self.shared.config.workers.max(1).saturating_mul(2) {
            let (shared, receive) = (Arc::clone(&self.shared), Arc::clone(&receive));
            let started = std::thread::Builder::new()
                .name(format!("sop-driver-{n}"))
                .spawn(move || loop {
                    let claimed = CLAIMED.with(|next| next.borrow_mut().take());
                    if claimed.is_none() {
                        // Nothing to drive on this thread: what its runs left is done first.
                        finish_ended_here(&shared);
                    }
                    let next = claimed.map_or_else(
                        || {
                            receive
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .recv()
                        },
                        Ok,
                    );
                    match next {
                        Ok(Job::Drive(id)) => {
                            drive_one(&shared, &id, |ctx| engine::drive(ctx, &id, &mut Quiet));
                        }
                        Ok(Job::Claimed(claimed))
                            if shared.stop.load(Ordering::SeqCst)
                                && matches!(claimed.1, Action::Spawn(_)) =>
                        {
                            // Claimed as the daemon stops, its first step not started:
                            // released, that step is recorded `interrupted` by recovery,
                            // like any step whose driver stopped. (A run that ended or
                            // waits is driven: that starts nothing.)
                            let id = &claimed.0.id;
                            tracing::warn!("run {id}: claimed while the scheduler stops; released");
                            let _ = shared.store.release(id, shared.owner);
                            shared.active().remove(id);
                        }
                        Ok(Job::Claimed(claimed)) => {
                            let (run, action) = *claimed;
                            let id = run.id.clone();
                            drive_one(&shared, &id, move |ctx| {
                                engine::drive_claimed(ctx, run, action, &mut Quiet)
                            });
                        }
                        Err(_) => return, // the scheduler stopped
                    }
                });
            match started {
                Ok(t) => threads.push(t),
                Err(e) => tracing::error!("cannot start a driver thread: {e}"),
            }
        }
        *self
            .shared
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(send);
    }

    /// One pass: recovery, deadlines, then start what may start.
    fn tick(&self, full: bool) -> Result<(), sop_store::StoreError> {
        let shared = &self.shared;
        let workers = shared.config.workers as usize;
        if full {
            let settle = shared.settler.get().map(|s| &**s);
            let recovered =
                recovery::recover_runs(&*shared.store, &shared.home, &shared.config, settle)?;
            for id in &recovered.interrupted {
                tracing::warn!(
                    "run {id} was interrupted (its driver stopped); `sop resume {id}` decides"
                );
            }
            // Every queued run is asked about: limits are the run's own (taken from its SOP
            // when it was created), so a newer run may start where an older one of the
            // same SOP may not.
            self.start_from(shared.store.active_runs()?, None)?;
            return Ok(());
        }
        // A quick pass reads only as deep into the queue as it must: usually the first rows
        // decide (a run starts, or the next waits behind one). Deeper only while every row
        // read was blocked by its own SOP's limits.
        let mut depth = QUICK_FIRST;
        let mut full_sops = HashSet::new();
        while self.active_count() < workers {
            let rows = shared.store.queue_head(depth)?;
            let read_all = rows.len() < depth as usize;
            let pass = self.start_from(rows, Some(&mut full_sops))?;
            if pass == Pass::Decided || read_all || depth >= QUICK_HEAD {
                break;
            }
            depth = (depth * 4).min(QUICK_HEAD);
        }
        Ok(())
    }

    /// Starts drivers for the runs of `queue` (in queue order) that may start now.
    /// `full_sops` (quick passes): SOPs whose `max_concurrent` slots were found held; their
    /// later runs are not asked about again in this pass (each ask walks the queue). A run
    /// whose own limits differ (its SOP was edited) is then left to the next full sweep.
    fn start_from(
        &self,
        queue: Vec<sop_store::RunRow>,
        mut full_sops: Option<&mut HashSet<String>>,
    ) -> Result<Pass, sop_store::StoreError> {
        let shared = &self.shared;
        let workers = shared.config.workers as usize;
        for row in queue {
            if row.status != RunStatus::Queued {
                continue;
            }
            if self.active_count() >= workers {
                return Ok(Pass::Decided);
            }
            if shared.driven_elsewhere(&row) {
                continue; // a foreground `sop run` drives it
            }
            if self.is_active(&row.id) || full_sops.as_ref().is_some_and(|f| f.contains(&row.sop)) {
                continue;
            }
            match shared
                .store
                .claim_preview(&row.id, shared.config.workers, now())?
            {
                None => self.start_driver(&row.id),
                // A run ahead (just handed to a driver) starts first: so would everything
                // behind it; the next pass goes on once it has claimed its slot.
                Some(Blocked::Behind { .. } | Blocked::WorkersBusy { .. }) => {
                    return Ok(Pass::Decided)
                }
                // Blocked by its own SOP's limits: runs of other SOPs may still start.
                Some(Blocked::SlotsHeld { .. }) => {
                    if let Some(full) = full_sops.as_deref_mut() {
                        full.insert(row.sop);
                    }
                }
                // `hold` and `max_pending_approvals` do not apply to resumed runs.
                Some(Blocked::Held { .. } | Blocked::PendingApprovals { .. }) => {}
            }
        }
        Ok(Pass::Open)
    }

    fn active_count(&self) -> usize {
        self.shared.active().len()
    }

    fn is_active(&self, id: &str) -> bool {
        self.shared.active().contains(id)
    }

    /// Forgets finished driver threads.
    /// Hands run `id` to a driver thread.
    fn start_driver(&self, id: &str) {
        // Not if a driver reserved it meanwhile (see `Handover`).
        if !self.shared.active().insert(id.to_string()) {
            return;
        }
        if !self.shared.send(Job::Drive(id.to_string())) {
            tracing::error!("no driver thread takes run {id}");
            self.shared.active().remove(id);
        }
    }
}

/// The engine's context on a driver thread, without the hooks of a drive.
fn context(shared: &Shared) -> Context<'_> {
    Context {
        store: &*shared.store,
        home: &shared.home,
        config: &shared.config,
        owner: shared.owner,
        release_when_idle: true,
        stop: Some(&shared.stop),
        on_claim: None,
        on_end: None,
        handover: None,
        settle: shared.settler.get().map(|s| &**s),
    }
}

/// What is left of run `id`, which a commit of this driver thread ended (see
/// [`Handover::finish_later`]).
fn finish_one(shared: &Shared, id: &str) {
    let ctx = context(shared);
    // A panic (a bug) must not end the driver thread: the run stays registered with the
    // settler (the next start rewrites its file).
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        engine::finish_ended(&ctx, id);
    }));
    if done.is_err() {
        tracing::error!("run {id}: finishing its audit file panicked (a bug in sop)");
    }
}

/// Drives run `id` on this driver thread (with `drive`: acquiring it, or going on from a
/// claim made for it) until it finishes, waits or is stopped.
fn drive_one(
    shared: &Shared,
    id: &str,
    drive: impl FnOnce(&Context<'_>) -> Result<RunStatus, engine::EngineError>,
) {
    // A claim lets the queue behind this run move (if a worker is still free).
    let ring = || shared.ring();
    let free = || {
        shared.active().remove(id);
        shared.ring();
    };
    let ctx = Context {
        on_claim: Some(&ring),
        on_end: Some(&free),
        handover: Some(shared),
        ..context(shared)
    };
    // A panic (a bug) must not hold a worker forever: it is logged, the run is released,
    // and recovery treats it as an orphan (its step `interrupted`).
    let driven = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drive(&ctx)));
    match driven {
        Ok(Ok(status)) => tracing::debug!("run {id}: {}", status.as_str()),
        Ok(Err(engine::EngineError::Busy { .. })) => {}
        Ok(Err(e)) => tracing::error!("run {id}: {e}"),
        Err(_) => {
            tracing::error!("run {id}: the driver panicked (a bug in sop); the run is released");
            let _ = shared.store.release(id, shared.owner);
        }
    }
    shared.active().remove(id);
    shared.ring();
}
