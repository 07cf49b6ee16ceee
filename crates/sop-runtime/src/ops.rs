//! Operations shared by every front end (CLI, HTTP API): execute a SOP, resolve a
//! `<sop|run>` target, decide a gate, cancel. Each is one store transaction decided by
//! `sop-core`; front ends only translate requests and answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use sop_core::config::RunnerConfig;
use sop_core::metrics::{self, Metrics};
use sop_core::policy::Admission;
use sop_core::run::{
    self, Decision, Happened, Millis, NewRun, Refusal, Run, RunStatus, TriggerInfo,
};
use sop_core::vars::{resolve_with_trigger, VarError};
use sop_core::{Diagnostic, Priority, Sop};
use sop_store::{Created, Fire, Owner, RunFilter, RunRow, Store, StoreError};

use crate::audit;
use crate::clock::{now, rfc3339};
use crate::home::Home;
use crate::loader;

/// Why an operation did not happen. Each variant maps to one CLI exit code and one HTTP
/// status in the front ends.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("no SOP named `{name}`{}", hint.as_ref().map_or_else(String::new, |h| format!(" ({h})")))]
    UnknownSop { name: String, hint: Option<String> },
    #[error("`{name}` has errors; fix them and try again (see `sop validate {name}`)")]
    InvalidSop {
        name: String,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("invalid variables for `{sop}`: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    BadVars { sop: String, errors: Vec<VarError> },
    #[error("{0}")]
    BadInput(String),
    #[error("`{sop}` is in cooldown: {} remain (run {run_id} started it); use --force to override", crate::clock::human_secs(*remaining_secs))]
    Cooldown {
        sop: String,
        remaining_secs: u64,
        run_id: String,
    },
    #[error("admission_policy = \"drop\": `{sop}` is busy (running: {})", running.join(", "))]
    Dropped { sop: String, running: Vec<String> },
    #[error("`{0}` is neither a run id nor a SOP with runs")]
    NoSuchTarget(String),
    #[error("no run of `{sop}` is {what}")]
    NothingWaiting { sop: String, what: String },
    #[error("{} runs of `{sop}` are {what}; name one by its run id:\n{}", runs.len(), runs.iter().map(|r| format!("  {}  {}  created {}", r.id, r.status.as_str(), rfc3339(r.created_at))).collect::<Vec<_>>().join("\n"))]
    Ambiguous {
        sop: String,
        what: String,
        runs: Vec<RunRow>,
    },
    #[error("run id prefix `{prefix}` is ambiguous: {}", ids.join(", "))]
    AmbiguousPrefix { prefix: String, ids: Vec<String> },
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the audit file: {0}")]
    Audit(std::io::Error),
    #[error("cannot read `{path}`: {source}")]
    Home {
        path: String,
        source: std::io::Error,
    },
}

/// A request to execute a SOP.
#[derive(Debug, Clone)]
pub struct ExecuteRequest {
    pub sop: String,
    pub vars: BTreeMap<String, String>,
    /// The vars the trigger that fired caught (SPEC §4: they win over `vars`, and need no
    /// declaration in `[vars]`); empty for a manual execution.
    pub trigger_vars: BTreeMap<String, String>,
    pub skip_approval: bool,
    pub priority: Option<Priority>,
    pub force: bool,
    pub trigger: TriggerInfo,
    /// The process that will drive the run (`None`: a driver is started afterwards).
    pub owner: Option<Owner>,
    /// The scheduled time a schedule trigger fires for (recorded with the run, once).
    pub fire: Option<Fire>,
}

/// The answer to an execute request.
#[derive(Debug, Clone)]
pub enum Executed {
    Created(Box<Run>),
    /// `admission_policy = "coalesce"`: folded into this existing run.
    Coalesced(String),
    /// The request's scheduled time was fired before: nothing was done.
    AlreadyFired,
}

impl Executed {
    pub fn run_id(&self) -> &str {
        match self {
            Executed::Created(r) => &r.id,
            Executed::Coalesced(id) => id,
            Executed::AlreadyFired => "",
        }
    }
}

/// Loads one SOP by name: the checked SOP and its warnings, or every diagnostic.
pub fn load_sop(home: &Home, name: &str) -> Result<(Arc<Sop>, Vec<Diagnostic>), OpError> {
    let valid_name =
        !name.is_empty() && !name.contains('/') && !name.contains("..") && !name.starts_with('.');
    if !valid_name || !home.sop_dir(name).is_dir() {
        let known = loader::sop_dirs(home).unwrap_or_default();
        let hint = sop_core::diagnostic::did_you_mean(name, known.iter().map(String::as_str));
        return Err(OpError::UnknownSop {
            name: name.to_string(),
            hint,
        });
    }
    match loader::load_shared(home, name) {
        (Some(sop), diagnostics) => Ok((sop, diagnostics)),
        (None, diagnostics) => Err(OpError::InvalidSop {
            name: name.to_string(),
            diagnostics,
        }),
    }
}

/// The operations of one home.
pub struct Ops<'a> {
    pub store: &'a dyn Store,
    pub home: &'a Home,
    pub config: &'a RunnerConfig,
    /// This process is the home's `sop serve`, which repairs queued runs' audit files as it
    /// starts: a new run's first file needs no sync (see [`Ops::execute`]).
    pub served: bool,
    /// The daemon's settler, once it runs: a run an operation ends gets its final audit
    /// file through it (see [`audit::Settler`]).
    pub settle: Option<&'a audit::Settler>,
}

/// What a thread of `sop serve` (the schedule timer, the file watcher, the command socket)
/// needs to act on its home: its operations, and a way to wake the scheduler after it
/// queued a run.
#[derive(Clone)]
pub struct Served {
    pub store: Arc<dyn Store>,
    pub home: Home,
    pub config: RunnerConfig,
    pub wake: Arc<dyn Fn() + Send + Sync>,
    /// The daemon's settler once it runs (`Scheduler::settler_slot`): a decision that
    /// ends a run (`/reject` on the socket) registers the run with it, as the API does.
    pub settler: Arc<std::sync::OnceLock<Arc<audit::Settler>>>,
}

impl Served {
    /// The home's operations, as `sop serve` does them: it repairs queued runs' audit
    /// files as it starts, and settles the final files of the runs it ends.
    pub fn ops(&self) -> Ops<'_> {
        Ops {
            store: &*self.store,
            home: &self.home,
            config: &self.config,
            served: true,
            settle: self.settler.get().map(|s| &**s),
        }
    }
}

/// A new run id: 12 random hex digits (operators type prefixes of it).
pub fn new_run_id() -> String {
    let u = uuid::Uuid::now_v7().simple().to_string();
    u[u.len() - 12..].to_string()
}

impl Ops<'_> {
    /// Checks the request and commits a queued run (or refuses it). Nothing is created
    /// unless every check passed.
    pub fn execute(&self, req: ExecuteRequest) -> Result<Executed, OpError> {
        let (sop, _) = load_sop(self.home, &req.sop)?;
        let vars =
            resolve_with_trigger(&sop.vars, &req.vars, &req.trigger_vars).map_err(|errors| {
                OpError::BadVars {
                    sop: sop.name.clone(),
                    errors,
                }
            })?;
        let t = now();
        let id = new_run_id();
        let new = run::new_run(
            NewRun {
                id: id.clone(),
                sop,
                priority: req.priority,
                skip_approval: req.skip_approval,
                forced: req.force,
                trigger: req.trigger,
                vars,
            },
            t,
        );
        let audit_path = audit::new_path(self.home, &new.sop.name, t, &id);
        let audit_rel = self.home.display(&audit_path);
        let created = match &req.fire {
            Some(fire) => self.store.create_fired_run(new, &audit_rel, t, fire)?,
            None => self.store.create_run(new, &audit_rel, req.owner, t)?,
        };
        match created {
            Created::AlreadyFired => Ok(Executed::AlreadyFired),
            Created::New(run) if self.served => {
                // Unsynced (two syncs fewer per new run): the run is committed (SPEC §8), and
                // its file is rewritten durably when the run comes to rest (waits or ends),
                // by recovery if it was moving, or by this `sop serve` as it starts again
                // if it is still queued (`recovery::repair_queued_audit`).
                audit::write_new(self.home, &run, &audit_rel).map_err(OpError::Audit)?;
                Ok(Executed::Created(run))
            }
            Created::New(run) => {
                // No daemon repairs this home's files after a power loss: durable.
                audit::note_path(&run.id, &audit_rel);
                audit::write(self.store, self.home, &run.id).map_err(OpError::Audit)?;
                Ok(Executed::Created(run))
            }
            Created::NotCreated(Admission::Coalesce { run_id }) => Ok(Executed::Coalesced(run_id)),
            Created::NotCreated(Admission::Cooldown {
                remaining_secs,
                run_id,
            }) => Err(OpError::Cooldown {
                sop: req.sop,
                remaining_secs,
                run_id,
            }),
            Created::NotCreated(Admission::Dropped { running }) => Err(OpError::Dropped {
                sop: req.sop,
                running,
            }),
            Created::NotCreated(Admission::Accept) => Err(OpError::BadInput(
                "the store did not create the run".to_string(),
            )),
        }
    }

    /// The run named by `target`: a run id (or a unique prefix of one), or a SOP name with
    /// exactly one run in one of `statuses` (any status when empty).
    pub fn resolve(
        &self,
        target: &str,
        statuses: &[RunStatus],
        what: &str,
    ) -> Result<String, OpError> {
        let ids = self.store.find_run_ids(target)?;
        if ids.iter().any(|i| i == target) {
            return Ok(target.to_string());
        }
        let filter = RunFilter {
            sop: Some(target.to_string()),
            statuses: statuses.to_vec(),
            limit: Some(50),
        };
        let runs = self.store.list_runs(&filter)?;
        let any = RunFilter {
            sop: Some(target.to_string()),
            statuses: vec![],
            limit: Some(1),
        };
        let sop_known =
            self.home.sop_dir(target).is_dir() || !self.store.list_runs(&any)?.is_empty();
        choose_run(&Candidates {
            target,
            what,
            any_status: statuses.is_empty(),
            ids,
            runs,
            sop_known,
        })
    }

    /// Applies a decision to the gate `run_id` waits at, and rewrites the audit file.
    pub fn decide(&self, run_id: &str, d: &Decision) -> Result<Run, OpError> {
        self.commit(run_id, |r, ev, t| run::decide(r, d, t, ev))
    }

    /// Cancels a run. Returns the run and whether its driver must kill a running step.
    pub fn cancel(&self, run_id: &str, by: &str) -> Result<(Run, bool), OpError> {
        let mut kill = false;
        let run = self.commit(run_id, |r, ev, t| {
            kill = run::cancel(r, by, t, ev)?;
            Ok(())
        })?;
        Ok((run, kill))
    }

    /// `sop resume`: retry, skip or abort the interrupted step.
    pub fn resume(&self, run_id: &str, how: run::ResumeHow, by: &str) -> Result<Run, OpError> {
        self.commit(run_id, |r, ev, t| run::resume(r, how, by, t, ev))
    }

    /// Commits `change` (given the time) to run `run_id`, then rewrites its audit file
    /// durably; the final file of a run this ends goes through the daemon's settler, if any
    /// (registered before the commit, so its mark waits for the file).
    fn commit<F>(&self, run_id: &str, mut change: F) -> Result<Run, OpError>
    where
        F: FnMut(&mut Run, &mut Vec<Happened>, Millis) -> Result<(), Refusal>,
    {
        let t = now();
        let mut registered = self.settle.map(|s| s.register(run_id));
        let mut changed = false;
        let run = self.store.update_run(run_id, t, &mut |r, ev| {
            change(r, ev, t)?;
            changed = !ev.is_empty();
            Ok(())
        })??;
        // Ended by this commit (a run that had ended before keeps its file as it is).
        if changed && run.status.is_terminal() {
            if let Some(registered) = registered.as_mut() {
                registered.keep();
            }
            audit::write_final(self.store, self.home, self.settle, run_id)
        } else {
            audit::write(self.store, self.home, run_id)
        }
        .map_err(OpError::Audit)?;
        Ok(run)
    }

    /// The run document as read commands and the API show it: the audit document, plus
    /// `queue` (why it waits and its place in the queue) while the run is queued.
    pub fn view(&self, run: &Run) -> Result<serde_json::Value, OpError> {
        let mut doc = audit::document(run);
        if run.status == RunStatus::Queued {
            if let Some(obj) = doc.as_object_mut() {
                obj.insert(
                    "queue".to_string(),
                    serde_json::Value::String(self.queue_note(run)?),
                );
            }
        }
        Ok(doc)
    }

    /// Why a queued run waits, and its place in the queue.
    fn queue_note(&self, run: &Run) -> Result<String, OpError> {
        let queued = self.store.list_runs(&RunFilter {
            sop: None,
            statuses: vec![RunStatus::Queued],
            limit: None,
        })?;
        let entries: Vec<sop_core::policy::Queued> = queued
            .iter()
            .map(|r| sop_core::policy::Queued {
                id: r.id.clone(),
                sop: r.sop.clone(),
                priority: r.priority,
                created_at: r.created_at,
                resumed: r.started_at.is_some(),
            })
            .collect();
        let position = sop_core::policy::position(&entries, &run.id).unwrap_or(1);
        let why = self
            .store
            .claim_preview(&run.id, self.config.workers, now())?;
        Ok(match why {
            Some(sop_core::policy::Blocked::Behind { .. }) => {
                format!("position {position} in the queue: runs ahead start first")
            }
            Some(blocked) => format!("{blocked}; position {position} in the queue"),
            None => format!("can start now; position {position} in the queue"),
        })
    }

    /// The metrics (SPEC §7) as of now, from every run and suppressed trigger the store
    /// keeps. With `sop`, that SOP's only (they are then also the `overall` figures); a SOP
    /// that neither exists nor has runs is an error.
    pub fn metrics(&self, sop: Option<&str>) -> Result<Metrics, OpError> {
        let (runs, suppressed) = self.store.metric_facts(None, sop)?;
        if let Some(name) = sop {
            if runs.is_empty() && suppressed.is_empty() {
                load_sop(self.home, name)?;
            }
        }
        Ok(metrics::compute(&runs, &suppressed, now()))
    }

    pub fn load_run(&self, run_id: &str) -> Result<Run, OpError> {
        self.store
            .load_run(run_id)?
            .ok_or_else(|| OpError::NoSuchTarget(run_id.to_string()))
    }
}

/// What is known about a `<sop|run>` target: the inputs of [`choose_run`].
pub struct Candidates<'a> {
    pub target: &'a str,
    /// How the wanted runs are described (`waiting for a decision`, ...).
    pub what: &'a str,
    /// Any status will do (read commands): the newest run of a SOP is taken.
    pub any_status: bool,
    /// Run ids starting with `target`.
    pub ids: Vec<String>,
    /// Runs of the SOP named `target` in the wanted statuses, newest first.
    pub runs: Vec<RunRow>,
    /// A SOP of that name exists (or has runs).
    pub sop_known: bool,
}

/// Resolves a target: an exact run id; else the SOP's one run in the wanted statuses;
/// else — only when no SOP has that name, and for 4 characters or more — a unique run id
/// prefix. A SOP name that looks like hex never acts on another SOP's run.
pub fn choose_run(c: &Candidates<'_>) -> Result<String, OpError> {
    let target = c.target;
    if c.ids.iter().any(|i| i == target) {
        return Ok(target.to_string());
    }
    let prefixes: &[String] = if c.sop_known || target.len() < 4 {
        &[]
    } else {
        &c.ids
    };
    match (c.runs.len(), prefixes.len()) {
        (1, _) => Ok(c.runs[0].id.clone()),
        (0, 1) => Ok(prefixes[0].clone()),
        (0, 0) if c.sop_known => Err(OpError::NothingWaiting {
            sop: target.to_string(),
            what: c.what.to_string(),
        }),
        (0, 0) => Err(OpError::NoSuchTarget(target.to_string())),
        (0, _) => Err(OpError::AmbiguousPrefix {
            prefix: target.to_string(),
            ids: prefixes.to_vec(),
        }),
        _ if c.any_status => Ok(c.runs[0].id.clone()),
        _ => Err(OpError::Ambiguous {
            sop: target.to_string(),
            what: c.what.to_string(),
            runs: c.runs.clone(),
        }),
    }
}

/// The statuses a decision verb acts on, and how to describe them.
pub fn decidable(verb: run::Verb) -> (&'static [RunStatus], &'static str) {
    match verb {
        run::Verb::Approve | run::Verb::Reject => (
            &[RunStatus::WaitingApproval, RunStatus::WaitingConfirmation],
            "waiting for a decision",
        ),
        run::Verb::Confirm | run::Verb::ConfirmFailed => (
            &[RunStatus::WaitingConfirmation],
            "waiting for confirmation",
        ),
    }
}

/// The statuses a cancel acts on.
pub const CANCELLABLE: &[RunStatus] = &[
    RunStatus::Queued,
    RunStatus::Running,
    RunStatus::WaitingApproval,
    RunStatus::WaitingConfirmation,
    RunStatus::Interrupted,
];
