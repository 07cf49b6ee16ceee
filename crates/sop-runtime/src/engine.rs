//! Drives one run: asks `sop-core` what to do next inside a store transaction, commits it,
//! then performs the side effect (spawn, wait, sleep). The engine decides nothing itself.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sop_core::config::RunnerConfig;
use sop_core::policy::Blocked;
use sop_core::run::{
    self, Action, Decision, ExitReport, Happened, Refusal, Run, RunStatus, Target,
};
use sop_store::{Owner, Store, StoreError};

use crate::audit;
use crate::clock::now;
use crate::home::Home;
use crate::process;

mod step;

pub use step::redactor_for;
use step::Ahead;

/// How often a waiting owner looks at the store for decisions made by other processes.
const POLL: Duration = Duration::from_millis(50);

/// What can stop the engine (the run itself failing is not an error).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run `{0}` does not exist")]
    NoSuchRun(String),
    #[error("run `{run}` is driven by another live process (pid {pid})")]
    Busy { run: String, pid: u32 },
    #[error("cannot write the audit file of run `{run}`: {source}")]
    Audit { run: String, source: std::io::Error },
    #[error("internal error (a bug in sop): {0}")]
    Internal(String),
    #[error("cannot start step of run `{run}`: {source}")]
    Spawn { run: String, source: std::io::Error },
}

/// Everything the engine needs from its surroundings.
pub struct Context<'a> {
    pub store: &'a dyn Store,
    pub home: &'a Home,
    pub config: &'a RunnerConfig,
    /// This process, as recorded in the store.
    pub owner: Owner,
    /// Daemon mode: hand the run back (return) when it waits at a gate or cannot claim a
    /// slot, instead of waiting in this thread. The scheduler picks it up again.
    pub release_when_idle: bool,
    /// Set when the process drains (SIGTERM): no new step starts, a running step is
    /// stopped (SIGTERM, grace, SIGKILL) and recorded `interrupted`.
    pub stop: Option<&'a AtomicBool>,
    /// Called when this driver took a slot (its run left the queue), so a scheduler can
    /// look at the rest of the queue at once instead of at its next tick.
    pub on_claim: Option<&'a (dyn Fn() + Sync)>,
    /// Called when this driver committed its run's last transition, before the audit file
    /// is rewritten: the run holds no worker slot any more, so a scheduler can start the
    /// next run meanwhile. (An ended run is nobody's: nothing else can drive it.)
    pub on_end: Option<&'a (dyn Fn() + Sync)>,
    /// Daemon: hands this driver's worker slot straight to the next queued run when its own
    /// run ends (see [`Handover`]).
    pub handover: Option<&'a dyn Handover>,
    /// Daemon: makes the audit file of a run this driver ends durable in a group with other
    /// runs' (see [`audit::Settler`]); without one, each is synced as its run ends.
    pub settle: Option<&'a audit::Settler>,
}

/// A daemon's hand-over of worker slots. When a driver's run ends with a step's exit, the
/// same commit claims a queued run reserved for it (`Store::update_run_then_claim`: one
/// sync, and no trip through the scheduler), which the same driver thread drives next; the
/// ended run's last work (its final audit file) waits until that run's step has started.
pub trait Handover: Sync {
    /// A queued run reserved for this driver to claim with the commit that may end its run.
    fn reserve(&self) -> Option<String>;
    /// The commit claimed `run`, owned by this process now, whose next action is `action`.
    fn claimed(&self, run: Run, action: Action);
    /// The reserved run `id` was not claimed: it is free again.
    fn unreserve(&self, id: &str);
    /// Defers what is left of run `id`, which this driver's commit ended and registered
    /// with the settler ([`finish_ended`]), until [`Handover::finish_deferred`], so the
    /// step of the run that commit claimed starts without waiting for it; `false`: it is
    /// done here, now.
    fn finish_later(&self, id: &str) -> bool;
    /// Does now what [`Handover::finish_later`] deferred: called by the driver once its
    /// step's process has started (the work is done while the step runs), and before a
    /// sleep, a wait or a claim, so none of it waits on those (the daemon also does it
    /// before its thread waits for work).
    fn finish_deferred(&self);
}

impl Context<'_> {
    fn stopping(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::SeqCst))
    }
}

/// Hooks for a front end (the CLI prints; the daemon streams).
pub trait Observer {
    fn event(&mut self, _run: &Run, _event: &Happened) {}
    /// Live, redacted step output.
    fn output(&mut self, _run: &Run, _gate: &str, _text: &str) {}
    /// The run is queued and cannot start yet (called when the reason changes).
    fn blocked(&mut self, _run: &Run, _why: &Blocked) {}
    /// Polled while the run waits: a decision typed right here, if any.
    fn poll_decision(&mut self, _run: &Run) -> Option<Decision> {
        None
    }
    /// A decision made here was refused.
    fn refused(&mut self, _run: &Run, _why: &Refusal) {}
}

/// An observer that does nothing (detached executors).
pub struct Quiet;
impl Observer for Quiet {}

/// This process as a store owner.
pub fn this_process() -> Owner {
    let pid = std::process::id();
    Owner {
        pid,
        start_time: process::process_start_time(pid).unwrap_or(0),
    }
}

/// Whether an owner process is still the same live process.
pub fn owner_alive(o: Owner) -> bool {
    process::is_same_process(o.pid, o.start_time)
}

/// Takes ownership of `run_id` and drives it until it finishes, is interrupted, or waits
/// with nobody to decide here and `stop_at_wait` is set.
pub fn drive(
    ctx: &Context<'_>,
    run_id: &str,
    obs: &mut dyn Observer,
) -> Result<RunStatus, EngineError> {
    let owner = match ctx.store.acquire(run_id, ctx.owner, &owner_alive) {
        Err(StoreError::NoSuchRun(id)) => return Err(EngineError::NoSuchRun(id)),
        other => other?,
    };
    if owner != ctx.owner {
        return Err(EngineError::Busy {
            run: run_id.to_string(),
            pid: owner.pid,
        });
    }
    let mut driver = Driver::new(ctx, run_id);
    let result = driver.run(obs, None);
    finish(ctx, run_id, result, driver.finished_later.get())
}

/// Drives a run that a driver's commit claimed for this process ([`Handover::claimed`]):
/// from its first audit rewrite on, as [`drive`] would after its own claim.
pub fn drive_claimed(
    ctx: &Context<'_>,
    run: Run,
    action: Action,
    obs: &mut dyn Observer,
) -> Result<RunStatus, EngineError> {
    let run_id = run.id.clone();
    let mut driver = Driver::new(ctx, &run_id);
    let ended = matches!(action, Action::Finished(_));
    let result = driver.write_audit(sync_for(&action)).and_then(|()| {
        // A run that ended in the claiming commit's walk stayed registered with the settler
        // until this (durable) rewrite.
        if ended {
            if let Some(settler) = ctx.settle {
                settler.rewritten_durably(&run_id);
            }
        }
        driver.run(obs, Some((run, action)))
    });
    finish(ctx, &run_id, result, driver.finished_later.get())
}

/// What is left of run `id` once a commit of this process ended it with its registration
/// kept ([`Handover::finish_later`]): its final audit file, then its scratch file.
pub fn finish_ended(ctx: &Context<'_>, id: &str) {
    if let Err(e) = write_final(ctx, id) {
        tracing::error!("{e}");
    }
    let _ = std::fs::remove_file(output_file_of(ctx.home, id));
}

/// The final audit file of run `id`, which a commit of this process ended (see
/// [`audit::write_final`]).
fn write_final(ctx: &Context<'_>, id: &str) -> Result<(), EngineError> {
    audit::write_final(ctx.store, ctx.home, ctx.settle, id).map_err(|source| EngineError::Audit {
        run: id.to_string(),
        source,
    })
}

/// A run a [`Handover`] reserved for a driver; given back when dropped unless claimed (so
/// also on an error or a panic in between).
struct Reserved<'h> {
    handover: &'h dyn Handover,
    id: Option<String>,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.handover.unreserve(&id);
        }
    }
}

/// What every drive ends with: a run whose audit file cannot be written is halted; an ended
/// run's scratch file goes (unless [`finish_ended`] sees to it: `finished_later`); a run
/// that waits is handed back.
fn finish(
    ctx: &Context<'_>,
    run_id: &str,
    result: Result<RunStatus, EngineError>,
    finished_later: bool,
) -> Result<RunStatus, EngineError> {
    if let Err(EngineError::Audit { source, .. }) = &result {
        // SPEC §8: without an audit trail no new step starts; the run ends as errored.
        let reason = format!("cannot write the audit file: {source}");
        let t = now();
        let mut registered = ctx.settle.map(|s| s.register(run_id));
        let _ = ctx.store.update_run(run_id, t, &mut |r, ev| {
            run::halt(r, &reason, t, ev);
            Ok(())
        })?;
        match audit::write(ctx.store, ctx.home, run_id) {
            Ok(()) => {
                if let Some(settler) = ctx.settle {
                    settler.rewritten_durably(run_id);
                }
            }
            Err(e) => {
                // Registered, it stays so: the next `sop serve` start rewrites it.
                if let Some(registered) = registered.as_mut() {
                    registered.keep();
                }
                tracing::error!("run {run_id}: cannot write its audit file: {e}");
            }
        }
    }
    if matches!(result, Ok(status) if status.is_terminal()) {
        // The run's last transition already let go of it (the store clears the owner).
        if !finished_later {
            let _ = std::fs::remove_file(output_file_of(ctx.home, run_id));
        }
    } else {
        ctx.store.release(run_id, ctx.owner)?;
    }
    result
}

/// The run's `$SOP_OUTPUT` file.
fn output_file_of(home: &Home, run_id: &str) -> PathBuf {
    home.scratch_dir().join(format!("{run_id}.out"))
}

struct Driver<'a, 'c> {
    ctx: &'a Context<'c>,
    run_id: String,
    /// The run ended and is finished later ([`Handover::finish_later`]).
    finished_later: Cell<bool>,
    /// The next step's process, started ahead of the commit that recorded it.
    ahead: RefCell<Option<Ahead>>,
    /// The process of the step that follows the running one if it succeeds, started (and
    /// held) as soon as the running one's last script began (see [`Driver::start_following`]).
    following: RefCell<Option<Ahead>>,
}

impl<'a, 'c> Driver<'a, 'c> {
    /// For a run that exists (`acquire` just found it).
    fn new(ctx: &'a Context<'c>, run_id: &str) -> Self {
        Driver {
            ctx,
            run_id: run_id.to_string(),
            finished_later: Cell::new(false),
            ahead: RefCell::new(None),
            following: RefCell::new(None),
        }
    }

    /// Commits `change` and rewrites the audit file (durably); reports the events.
    fn commit(
        &self,
        obs: &mut dyn Observer,
        change: &mut sop_store::RunChange<'_>,
    ) -> Result<Result<Run, Refusal>, EngineError> {
        self.commit_with(obs, change, &|_| audit::Sync::Durable)
    }

    /// [`Self::commit`], with the audit rewrite's durability chosen from the committed run.
    fn commit_with(
        &self,
        obs: &mut dyn Observer,
        change: &mut sop_store::RunChange<'_>,
        sync: &dyn Fn(&Run) -> audit::Sync,
    ) -> Result<Result<Run, Refusal>, EngineError> {
        self.commit_handing(obs, change, sync, None)
    }

    /// [`Self::commit_with`]; with `next` (a run the [`Handover`] reserved), a commit that
    /// ends this run also claims `next`, handed over at once; this run's final audit file is
    /// then written once the claimed run's step has started, where the handover can
    /// ([`Handover::finish_later`]). A reservation not claimed is given back.
    fn commit_handing(
        &self,
        obs: &mut dyn Observer,
        change: &mut sop_store::RunChange<'_>,
        sync: &dyn Fn(&Run) -> audit::Sync,
        next: Option<Reserved<'_>>,
    ) -> Result<Result<Run, Refusal>, EngineError> {
        let mut events = Vec::new();
        let mut changed = false;
        let mut registered = self.register(&self.run_id);
        let mut record = |run: &mut Run, ev: &mut Vec<Happened>| {
            // Cheap: the SOP and the step records are shared between the copies.
            let before = run.clone();
            change(run, ev)?;
            events.clone_from(ev);
            // The store's own rule: it writes when there are events or the run differs.
            changed = !ev.is_empty() || *run != before;
            Ok(())
        };
        // A run was claimed with this commit: this driver goes on with it next.
        let mut handed_over = false;
        let result = match next {
            Some(mut reserved) => {
                let handover = reserved.handover;
                let id = reserved.id.clone().unwrap_or_default();
                // The claimed run may end in its walk (nothing left to run).
                let mut next_registered = reserved.id.as_deref().and_then(|id| self.register(id));
                let walked: RefCell<Option<Action>> = RefCell::new(None);
                let successor = sop_store::Successor {
                    id: &id,
                    me: self.ctx.owner,
                    is_alive: &owner_alive,
                    workers: self.ctx.config.workers,
                    wanted: &|| !self.ctx.stopping(),
                };
                let committed = self.ctx.store.update_run_then_claim(
                    &self.run_id,
                    now(),
                    &mut record,
                    &successor,
                    &mut |run, ev| {
                        *walked.borrow_mut() = Some(run::advance(run, now(), ev));
                        Ok(())
                    },
                );
                let (result, claimed) = committed?;
                if let Some(next_run) = claimed {
                    // Handed over at once, before anything else can go wrong here: the run
                    // is claimed and this process's, and only a driver makes it go on.
                    reserved.id = None;
                    let action = walked.into_inner().unwrap_or(Action::Claim);
                    // Settled before it is handed over: kept if it ended (its driver
                    // settles it after the durable rewrite), else unregistered now.
                    match next_registered.as_mut() {
                        Some(r) if matches!(action, Action::Finished(_)) => r.keep(),
                        _ => drop(next_registered),
                    }
                    handover.claimed(next_run, action);
                    handed_over = true;
                }
                result
            }
            None => self
                .ctx
                .store
                .update_run(&self.run_id, now(), &mut record)?,
        };
        if let Ok(run) = &result {
            let ended = changed && run.status.is_terminal();
            if ended {
                if let Some(on_end) = self.ctx.on_end {
                    on_end();
                }
            }
            if ended {
                // The final audit file (for the settler's next group, if any): now, or
                // once the claimed run's step has started.
                if let Some(registered) = registered.as_mut() {
                    registered.keep();
                }
                let later = handed_over
                    && self
                        .ctx
                        .handover
                        .is_some_and(|h| h.finish_later(&self.run_id));
                if later {
                    self.finished_later.set(true);
                } else {
                    write_final(self.ctx, &self.run_id)?;
                }
            } else if changed {
                self.write_audit(sync(run))?;
            }
            // Nothing changed, nothing written: the audit file is current as it is.
            for e in &events {
                obs.event(run, e);
            }
        }
        Ok(result)
    }

    /// Registers run `id` with the daemon's settler, if any, before a commit that may end it.
    fn register(&self, id: &str) -> Option<audit::Registration<'a>> {
        self.ctx.settle.map(|settler| settler.register(id))
    }

    fn write_audit(&self, sync: audit::Sync) -> Result<(), EngineError> {
        audit::write_with(self.ctx.store, self.ctx.home, &self.run_id, sync).map_err(|source| {
            EngineError::Audit {
                run: self.run_id.clone(),
                source,
            }
        })
    }

    /// Drives the run; `advanced`: its next action, already committed (a claim made
    /// elsewhere).
    fn run(
        &mut self,
        obs: &mut dyn Observer,
        mut advanced: Option<(Run, Action)>,
    ) -> Result<RunStatus, EngineError> {
        let mut last_block: Option<Blocked> = None;
        // `advanced`: the next action when the previous commit already advanced the run (a
        // step's exit and the walk to the next step are one transaction).
        loop {
            if let Some((run, action)) = advanced.take() {
                if let Some(status) = self.act(&run, action, obs, &mut last_block, &mut advanced)? {
                    return Ok(status);
                }
                continue;
            }
            if self.ctx.stopping() {
                // Between steps: the run stays as committed; the next start picks it up.
                let status = self
                    .ctx
                    .store
                    .run_row(&self.run_id)?
                    .map_or(RunStatus::Queued, |r| r.status);
                return Ok(status);
            }
            let action = RefCell::new(Action::Claim);
            let run = self
                .commit_with(
                    obs,
                    &mut |run, ev| {
                        *action.borrow_mut() = run::advance(run, now(), ev);
                        Ok(())
                    },
                    &|_| sync_for(&action.borrow()),
                )?
                .map_err(|r| EngineError::Internal(format!("advance was refused: {r}")))?;
            let action = action.into_inner();
            if let Some(status) = self.act(&run, action, obs, &mut last_block, &mut advanced)? {
                return Ok(status);
            }
        }
    }

    /// Performs `action` (just committed). `Some(status)`: the drive is over.
    fn act(
        &self,
        run: &Run,
        action: Action,
        obs: &mut dyn Observer,
        last_block: &mut Option<Blocked>,
        advanced: &mut Option<(Run, Action)>,
    ) -> Result<Option<RunStatus>, EngineError> {
        {
            // Work deferred by an earlier run's end does not wait for a sleep or a wait.
            // (Not at a run's end: the run that just deferred its own ends so.)
            if matches!(
                action,
                Action::Sleep { .. } | Action::Wait { .. } | Action::Claim
            ) {
                if let Some(h) = self.ctx.handover {
                    h.finish_deferred();
                }
            }
            match action {
                Action::Finished(status) => return Ok(Some(status)),
                Action::Interrupted => return Ok(Some(RunStatus::Interrupted)),
                Action::Claim => {
                    // Read before the claim, so a change right after it is not missed; a
                    // daemon driver does not wait here (it hands a blocked run back).
                    let seen = if self.ctx.release_when_idle {
                        None
                    } else {
                        Some(self.ctx.store.change_counter()?)
                    };
                    // The claim and the walk to the first step are one transaction.
                    let next: RefCell<Option<Action>> = RefCell::new(None);
                    let mut events = Vec::new();
                    // The walk may end the run (nothing left to run).
                    let mut registered = self.register(&self.run_id);
                    let claimed = self.ctx.store.claim_and(
                        &self.run_id,
                        self.ctx.config.workers,
                        now(),
                        &mut |run, ev| {
                            *next.borrow_mut() = Some(run::advance(run, now(), ev));
                            events.clone_from(ev);
                            Ok(())
                        },
                    )?;
                    match claimed {
                        Ok(Some(run)) => {
                            *last_block = None;
                            if let Some(on_claim) = self.ctx.on_claim {
                                on_claim();
                            }
                            let next = next.into_inner();
                            let written = self
                                .write_audit(next.as_ref().map_or(audit::Sync::Durable, sync_for));
                            if written.is_err() && run.status.is_terminal() {
                                // Not durable: the settler's mark holds before it.
                                if let Some(r) = registered.as_mut() {
                                    r.keep();
                                }
                            }
                            written?;
                            for e in &events {
                                obs.event(&run, e);
                            }
                            if let Some(action) = next {
                                *advanced = Some((run, action));
                            }
                        }
                        // Not queued (any more): the loop walks it as it is.
                        Ok(None) => *last_block = None,
                        Err(why) => {
                            if last_block.as_ref() != Some(&why) {
                                obs.blocked(run, &why);
                                *last_block = Some(why);
                            }
                            match seen {
                                Some(seen) => self.wait_for_change(seen, None),
                                None => return Ok(Some(RunStatus::Queued)),
                            }
                        }
                    }
                }
                Action::Sleep { until } => {
                    let seen = self.ctx.store.change_counter()?;
                    self.wait_for_change(seen, Some(until));
                }
                Action::Wait { .. } if self.ctx.release_when_idle => return Ok(Some(run.status)),
                Action::Wait { deadline } => self.wait_for_decision(run, deadline, obs)?,
                Action::Spawn(exec) => {
                    let ahead = self.ahead.take().filter(|a| a.is_for(run, &exec));
                    let report = self.execute(run, &exec, ahead.map(|a| a.gated), obs);
                    let following = self.following.take();
                    let target = exec.target.clone();
                    let stopped = report.cancelled && self.ctx.stopping();
                    // The exit and the walk to what comes next are one transaction: both are
                    // committed before the next side effect, with one fsync instead of two.
                    let next: RefCell<Option<Action>> = RefCell::new(None);
                    // The last step's exit usually ends the run: its worker slot can go to the
                    // next queued run in the same commit.
                    let last = matches!(&target, Target::Step { phase: run::Phase::Main, index }
                        if index + 1 == run.sop.steps.len());
                    let reserved = match self.ctx.handover {
                        Some(handover) if last && !self.ctx.stopping() => {
                            handover.reserve().map(|id| Reserved {
                                handover,
                                id: Some(id),
                            })
                        }
                        _ => None,
                    };
                    // The run's next step, held at its gate: the one started while this step
                    // ran if it fits, else one started now, whose shell starts while the
                    // commit syncs.
                    let mut ahead = if stopped || self.ctx.stopping() {
                        drop(following);
                        None
                    } else {
                        self.start_next_ahead(run, &target, &report, following)
                    };
                    let adopted = Cell::new(false);
                    let committed = self.commit_handing(
                        obs,
                        &mut |run, ev| {
                            *next.borrow_mut() = None;
                            if stopped {
                                run::interrupt(run, now(), ev);
                            } else {
                                run::exited(run, &target, report.clone(), now(), ev);
                                if !self.ctx.stopping() {
                                    let action = run::advance(run, now(), ev);
                                    adopted.set(record_ahead(ahead.as_ref(), run, &action, ev));
                                    *next.borrow_mut() = Some(action);
                                }
                            }
                            Ok(())
                        },
                        &|_| {
                            next.borrow()
                                .as_ref()
                                .map_or(audit::Sync::Durable, sync_for)
                        },
                        reserved,
                    );
                    if committed.is_err() && adopted.get() {
                        // Committed as started with its pid, but its audit rewrite failed:
                        // the held process goes unopened, and the step is not spawned after
                        // all (the run is halted next, recording it as not started).
                        if let Some(held) = ahead.take() {
                            let (target, pid) =
                                (held.exec.target.clone(), held.gated.spawned().pid);
                            drop(held);
                            let _ = self.ctx.store.update_run(&self.run_id, now(), &mut |r, _| {
                                run::unspawned(r, &target, pid);
                                Ok(())
                            });
                        }
                    }
                    let run = committed?.map_err(|r| {
                        EngineError::Internal(format!("step exit was refused: {r}"))
                    })?;
                    if adopted.get() {
                        *self.ahead.borrow_mut() = ahead;
                    }
                    if let Some(action) = next.into_inner() {
                        *advanced = Some((run, action));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The first process of the step the commit of `report` (the exit of `target`) will
    /// start next in this run, started ahead and held at its gate (see
    /// [`Driver::start_ahead`]): `started`, if it was started for that step and is still
    /// current ([`process::Gated::is_current`]), else a new one. Worked out from the run as
    /// it is now; the commit uses it only if it starts that very step (another process may
    /// have changed the run).
    fn start_next_ahead(
        &self,
        run: &Run,
        target: &Target,
        report: &ExitReport,
        started: Option<Ahead>,
    ) -> Option<Ahead> {
        let (after, exec) = spawned_after(run, target, report.clone())?;
        // One that cannot be used is let go (and gone) before another is started.
        started
            .filter(|a| a.is_for(&after, &exec) && a.gated.is_current())
            .or_else(|| self.start_ahead(&after, &exec))
    }

    /// Called as the last script of `exec` (committed as running in `run`) starts: the
    /// step that follows it if it succeeds with no `$SOP_OUTPUT` variables (the usual case)
    /// is started now and held, so its interpreter starts while this step runs. Its exit
    /// commit uses it only if that step does follow then, with the same variables, and the
    /// process is still current (see [`Driver::start_next_ahead`]); else it is let go.
    /// Not for a step that declares `outputs` (it would change the variables), nor when the
    /// next step works in another directory (a held shell there would keep that directory
    /// busy while this step runs: an unmount of it would fail).
    fn start_following(&self, run: &Run, exec: &run::Exec) {
        let declares_outputs = match &exec.target {
            Target::Step { phase, index } => {
                let steps = match phase {
                    run::Phase::Main => &run.sop.steps,
                    run::Phase::Rollback => &run.sop.rollback,
                };
                steps.get(*index).is_some_and(|s| !s.outputs.is_empty())
            }
            Target::Gate { .. } => false,
        };
        if self.ctx.stopping() || declares_outputs {
            return;
        }
        let started = spawned_after(run, &exec.target, ExitReport::success())
            .filter(|(_, next)| next.workdir == exec.workdir)
            .and_then(|(after, next)| self.start_ahead(&after, &next));
        *self.following.borrow_mut() = started;
    }

    /// Sleeps until another process commits something, or `until` (ms) passes.
    fn wait_for_change(&self, seen: i64, until: Option<i64>) {
        loop {
            std::thread::sleep(POLL);
            if until.is_some_and(|u| now() >= u) {
                return;
            }
            match self.ctx.store.change_counter() {
                Ok(c) if c != seen => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    fn wait_for_decision(
        &self,
        run: &Run,
        deadline: Option<i64>,
        obs: &mut dyn Observer,
    ) -> Result<(), EngineError> {
        // Read the counter first, then the run: a decision committed in between is seen
        // in the run, and any later one moves the counter.
        let seen = self.ctx.store.change_counter()?;
        let current = self.ctx.store.load_run(&self.run_id)?;
        if current
            .as_ref()
            .is_none_or(|r| r.status != run.status || r.wait != run.wait || r.cancel != run.cancel)
        {
            return Ok(());
        }
        loop {
            if let Some(decision) = obs.poll_decision(run) {
                match self.commit(obs, &mut |run, ev| run::decide(run, &decision, now(), ev))? {
                    Ok(_) => return Ok(()),
                    Err(why) => obs.refused(run, &why),
                }
            }
            if deadline.is_some_and(|d| now() >= d) {
                return Ok(());
            }
            if self.ctx.store.change_counter()? != seen {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The run as `report` (the exit of `target`) and the walk after it would leave it, and the
/// step that walk starts, if it starts one.
fn spawned_after(run: &Run, target: &Target, report: ExitReport) -> Option<(Run, run::Exec)> {
    let t = now();
    let mut ev = Vec::new();
    let mut after = run.clone();
    run::exited(&mut after, target, report, t, &mut ev);
    match run::advance(&mut after, t, &mut ev) {
        Action::Spawn(exec) => Some((after, exec)),
        _ => None,
    }
}

/// Records the pid of `ahead` in `run` if `action`, just committed for it, starts exactly
/// the step `ahead` was started for.
fn record_ahead(
    ahead: Option<&Ahead>,
    run: &mut Run,
    action: &Action,
    ev: &mut Vec<Happened>,
) -> bool {
    match (ahead, action) {
        (Some(a), Action::Spawn(exec)) if a.is_for(run, exec) => {
            let s = a.gated.spawned();
            run::spawned(run, &exec.target, s.pid, s.start_time, ev);
            true
        }
        _ => false,
    }
}

/// How far the audit rewrite after a commit goes to disk: deferred only while the run moves
/// on at once to a step process (see [`audit::Sync::Deferred`]); durable when it comes to rest.
fn sync_for(next: &Action) -> audit::Sync {
    match next {
        Action::Spawn(_) => audit::Sync::Deferred,
        _ => audit::Sync::Durable,
    }
}
