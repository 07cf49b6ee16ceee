//! Command lines taken by a home (`sop cmd`, `sop trigger test`, `POST /api/command`;
//! SPEC §6): a built-in `/approve` or `/reject` decides the gate the run it names waits at;
//! other text executes every SOP whose `command` trigger matches it, with the vars the
//! trigger caught. `sop-core` reads the line and matches; this module loads, commits and
//! reports.

use std::collections::BTreeMap;
use std::sync::Arc;

use sop_core::command::{match_triggers, CommandLine};
use sop_core::run::{Decision, Run, TriggerInfo, Verb};
use sop_core::vars::{resolve_with_trigger, MASK};
use sop_core::webhook::hook_of;
use sop_core::Sop;

use sop_store::{Fire, Suppression};

use crate::clock::now;
use crate::loader;
use crate::ops::{decidable, ExecuteRequest, Executed, OpError, Ops};

/// Who sent a command line. A built-in decision is recorded with channel `command`,
/// whether the line came by `sop cmd` or `POST /api/command`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub by: String,
    pub groups: Vec<String>,
}

/// What a command line did (or, in a dry run, would do).
#[derive(Debug)]
pub enum CommandAnswer {
    /// A built-in decision on the run the line named.
    Decided {
        verb: Verb,
        /// The run after the decision (in a dry run: as it is).
        run: Box<Run>,
    },
    /// The SOPs whose `command` trigger matched, in name order (none: nothing matched).
    Fired {
        fired: Vec<Fired>,
        /// SOPs with errors: not matched (`sop validate` tells why).
        invalid: Vec<String>,
    },
}

/// One SOP a command line matched.
#[derive(Debug)]
pub struct Fired {
    pub sop: String,
    /// The vars the trigger caught, declared secrets as `***`.
    pub vars: BTreeMap<String, String>,
    pub outcome: FireOutcome,
}

/// What became of one match.
#[derive(Debug)]
pub enum FireOutcome {
    /// A dry run: the vars fit; nothing was done.
    WouldRun,
    /// Committed as a queued run.
    Queued(Box<Run>),
    /// `admission_policy = "coalesce"`: folded into this run.
    Coalesced(String),
    /// A schedule's time that was fired before (by another daemon): nothing was done.
    AlreadyFired,
    /// The SOP is in cooldown: not queued, and recorded as suppressed in the store (SPEC
    /// §6) before this is answered.
    Suppressed { remaining_secs: u64, run_id: String },
    /// Refused (the vars do not fit `[vars]`, `admission_policy = "drop"`, ...) or failed
    /// (the store or the audit file could not be written).
    Refused(OpError),
}

impl Ops<'_> {
    /// Takes a command line (read by [`sop_core::command::parse_command`]). A dry run
    /// commits nothing: it resolves the run a built-in names, or lists the SOPs that match.
    /// Matches are executed one after another, each in its own transaction: one SOP's
    /// refusal does not undo another's run.
    pub fn command(
        &self,
        line: &CommandLine<'_>,
        caller: &Caller,
        dry_run: bool,
    ) -> Result<CommandAnswer, OpError> {
        let (verb, target, comment) = match *line {
            CommandLine::Approve { target, comment } => (Verb::Approve, target, comment),
            CommandLine::Reject { target, reason } => (Verb::Reject, target, Some(reason)),
            CommandLine::Text(text) => return self.fire_text(text, caller, dry_run),
        };
        let (statuses, what) = decidable(verb);
        let id = self.resolve(target, statuses, what)?;
        let run = if dry_run {
            self.load_run(&id)?
        } else {
            self.decide(
                &id,
                &Decision {
                    verb,
                    by: caller.by.clone(),
                    groups: caller.groups.clone(),
                    channel: "command".to_string(),
                    comment: comment.map(str::to_string),
                    set: BTreeMap::new(),
                    gate: None,
                },
            )?
        };
        Ok(CommandAnswer::Decided {
            verb,
            run: Box::new(run),
        })
    }

    fn fire_text(
        &self,
        text: &str,
        caller: &Caller,
        dry_run: bool,
    ) -> Result<CommandAnswer, OpError> {
        let (matches, invalid) = pick_sops(self, |sop| match_triggers(sop, text))?;
        let mut fired = Vec::with_capacity(matches.len());
        for (sop, caught) in matches {
            let shown = shown_vars(&sop, &caught);
            let outcome = if dry_run {
                // What can be told without committing: whether the vars fit `[vars]` (not
                // cooldown or admission, which the commit decides).
                match resolve_with_trigger(&sop.vars, &BTreeMap::new(), &caught) {
                    Ok(_) => FireOutcome::WouldRun,
                    Err(errors) => FireOutcome::Refused(OpError::BadVars {
                        sop: sop.name.clone(),
                        errors,
                    }),
                }
            } else {
                let trigger = TriggerInfo {
                    kind: "command".to_string(),
                    by: caller.by.clone(),
                };
                self.fire(&sop, caught, trigger, None)
            };
            fired.push(Fired {
                sop: sop.name.clone(),
                vars: shown,
                outcome,
            });
        }
        Ok(CommandAnswer::Fired { fired, invalid })
    }

    /// Executes `sop` for a trigger that fired, with the vars it caught. Whatever happens is
    /// the outcome, a store failure too, so that each of the SOPs one trigger fires gets
    /// its own, and the runs already queued are reported. In cooldown, the suppression is
    /// committed before it is answered.
    pub fn fire(
        &self,
        sop: &Sop,
        caught: BTreeMap<String, String>,
        trigger: TriggerInfo,
        scheduled: Option<Fire>,
    ) -> FireOutcome {
        let (kind, by) = (trigger.kind.clone(), trigger.by.clone());
        let request = ExecuteRequest {
            sop: sop.name.clone(),
            vars: BTreeMap::new(),
            trigger_vars: caught,
            skip_approval: false,
            priority: None,
            force: false,
            trigger,
            owner: None,
            fire: scheduled,
        };
        match self.execute(request) {
            Ok(Executed::Created(run)) => FireOutcome::Queued(run),
            Ok(Executed::Coalesced(id)) => FireOutcome::Coalesced(id),
            Ok(Executed::AlreadyFired) => FireOutcome::AlreadyFired,
            Err(OpError::Cooldown {
                remaining_secs,
                run_id,
                ..
            }) => {
                let recorded = self.store.record_suppression(&Suppression {
                    sop: sop.name.clone(),
                    trigger: kind.clone(),
                    by,
                    at: now(),
                    cooldown_run: run_id.clone(),
                });
                if let Err(e) = recorded {
                    return FireOutcome::Refused(e.into());
                }
                tracing::info!(
                    sop = %sop.name,
                    trigger = %kind,
                    remaining_secs,
                    cooldown_run = %run_id,
                    "trigger suppressed: the SOP is in cooldown"
                );
                FireOutcome::Suppressed {
                    remaining_secs,
                    run_id,
                }
            }
            Err(e) => FireOutcome::Refused(e),
        }
    }
}

/// The SOPs of the home for which `pick` gives something (a trigger matched), in name
/// order, with what it gave; and the names of SOPs with errors, which are not asked.
pub(crate) type Picked<T> = (Vec<(Arc<Sop>, T)>, Vec<String>);

pub(crate) fn pick_sops<T>(
    ops: &Ops<'_>,
    pick: impl Fn(&Sop) -> Option<T>,
) -> Result<Picked<T>, OpError> {
    let names = loader::sop_dirs(ops.home).map_err(|source| OpError::Home {
        path: ops.home.sops_dir().display().to_string(),
        source,
    })?;
    let mut picked = Vec::new();
    let mut invalid = Vec::new();
    for name in names {
        match loader::load_shared(ops.home, &name) {
            (Some(sop), _) => {
                if let Some(got) = pick(&sop) {
                    picked.push((sop, got));
                }
            }
            (None, _) => invalid.push(name),
        }
    }
    Ok((picked, invalid))
}

impl Ops<'_> {
    /// The SOPs with a webhook trigger served at `path`, each with the name of the
    /// environment variable holding its HMAC secret (if it has one); and the SOPs with
    /// errors.
    pub fn hooked(&self, path: &str) -> Result<Picked<Option<String>>, OpError> {
        pick_sops(self, |sop| {
            hook_of(sop, path).map(|env| env.map(str::to_string))
        })
    }
}

/// `caught` as it may be shown: values of variables declared secret are `***`.
pub fn shown_vars(sop: &Sop, caught: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    caught
        .iter()
        .map(|(name, value)| {
            let secret = sop.vars.get(name).is_some_and(|d| d.secret);
            let shown = if secret {
                MASK.to_string()
            } else {
                value.clone()
            };
            (name.clone(), shown)
        })
        .collect()
}
