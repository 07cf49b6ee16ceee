//! Running one step's scripts as child processes: the environment, the live output
//! (redacted, bounded), the `$SOP_OUTPUT` variables, and the report the engine commits.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use sop_core::config::RunnerConfig;
use sop_core::run::{self, Exec, ExitReport, Run, Target};
use sop_core::vars::{check_var_name, check_var_value, Redactor};

use super::{now, output_file_of, Driver, Observer};
use crate::output::BoundedOutput;
use crate::process::{self, Chunk, StepCommand};

impl Driver<'_, '_> {
    /// Runs the scripts of one step; the step is already committed as running (with the pid
    /// of `ahead`, its first script's process started ahead and held at its gate, if any).
    pub(super) fn execute(
        &self,
        run: &Run,
        exec: &Exec,
        mut ahead: Option<process::Gated>,
        obs: &mut dyn Observer,
    ) -> ExitReport {
        let ctx = self.ctx;
        let gate = match &exec.target {
            Target::Step {
                phase: run::Phase::Main,
                index,
            } => format!("step {}", index + 1),
            Target::Step {
                phase: run::Phase::Rollback,
                index,
            } => format!("rollback step {}", index + 1),
            Target::Gate { name } => format!("gate {name}"),
        };
        // Built from the run as committed now: secrets set since the run started (by a
        // step's `$SOP_OUTPUT`, or `--set` at a gate) are redacted too.
        let redactor = redactor_for(run, ctx.config);
        let scratch = ctx.home.scratch_dir();
        // One `$SOP_OUTPUT` file per run, emptied before each step (steps of a run never
        // overlap): it exists when the step starts, and no file is created and removed per
        // step (a freed inode slows later allocations, see `audit`). Removed at the end.
        let output_file = output_file_of(ctx.home, &run.id);
        let empty = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&output_file)
                .map(drop)
        };
        if let Err(e) = empty().or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&scratch).and_then(|()| empty())
            }
            _ => Err(e),
        }) {
            return not_started(&format!("cannot prepare `{}`: {e}", output_file.display()));
        }
        let started = Instant::now();
        let total = Duration::from_secs(exec.timeout_secs.max(1));
        let mut captured = BoundedOutput::new(ctx.config.output_limit_bytes() as usize);
        let mut report = ExitReport::success();
        let mut line_buf = String::new();
        let store_limit = ctx.config.output_limit_bytes();
        let mut stored: u64 = 0;
        let mut store_chunk = |text: &str| {
            // The output table holds live output for `sop logs -f`; past the step's limit
            // it stops growing (the step record keeps head and tail).
            if stored < store_limit {
                let room = usize::try_from(store_limit - stored).unwrap_or(usize::MAX);
                stored += text.len() as u64;
                let text = if text.len() > room {
                    // Cut at a character boundary within the room left.
                    let cut = (0..=room)
                        .rev()
                        .find(|i| text.is_char_boundary(*i))
                        .unwrap_or(0);
                    format!("{}\n[sop: output past {store_limit} bytes is not stored live; the step record keeps its head and tail]\n", &text[..cut])
                } else {
                    text.to_string()
                };
                let _ = ctx.store.append_output(&run.id, &gate, exec.attempt, &text);
            }
        };
        for (i, script) in exec.scripts.iter().enumerate() {
            let target = exec.target.clone();
            // Once the step's last script runs, the step after it can be started and held.
            let last = i + 1 == exec.scripts.len();
            let mut on_spawn = |s: process::Spawned| -> std::io::Result<()> {
                // Unsynced: a pid means nothing after a power loss (the step is then
                // `interrupted` either way); a crash of this process does keep it.
                ctx.store
                    .update_run_unsynced(&run.id, now(), &mut |r, ev| {
                        run::spawned(r, &target, s.pid, s.start_time, ev);
                        Ok(())
                    })
                    .map_err(|e| std::io::Error::other(e.to_string()))?
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                if last {
                    self.start_following(run, exec);
                }
                if let Some(h) = ctx.handover {
                    h.finish_deferred();
                }
                Ok(())
            };
            let mut on_output = |chunk: Chunk<'_>| {
                let bytes = match chunk {
                    Chunk::Stdout(b) | Chunk::Stderr(b) => b,
                };
                captured.push(bytes);
                let before = line_buf.len();
                line_buf.push_str(&String::from_utf8_lossy(bytes));
                // Redact whole lines only, so a secret split across chunks is still caught;
                // a line that never ends is cut at 64 KiB. Only the new text is searched.
                let cut = line_buf[before..].rfind('\n').map(|p| before + p + 1);
                let cut = cut.or((line_buf.len() > MAX_LINE).then_some(line_buf.len()));
                if let Some(cut) = cut {
                    let text = redactor.redact(&line_buf[..cut]);
                    line_buf.drain(..cut);
                    store_chunk(&text);
                    obs.output(run, &gate, &text);
                }
            };
            // No counter is read before the spawn: the first check (after ~100 ms) looks at
            // the run itself, so a step that ends sooner costs no store read here.
            let mut seen: Option<i64> = None;
            let mut should_cancel = || match ctx.store.change_counter() {
                _ if ctx.stopping() => true,
                Ok(c) if seen != Some(c) => {
                    seen = Some(c);
                    ctx.store
                        .load_run(&run.id)
                        .ok()
                        .flatten()
                        .is_some_and(|r| run::cancel_requested(&r))
                }
                _ => false,
            };
            // The first script may have been started ahead (`ahead` goes with it).
            let ran = if let Some(gated) = ahead.take() {
                let mut on_open = || {
                    if last {
                        self.start_following(run, exec);
                    }
                    if let Some(h) = ctx.handover {
                        h.finish_deferred();
                    }
                };
                gated.run(&mut on_open, &mut on_output, &mut should_cancel)
            } else {
                let remaining = total.saturating_sub(started.elapsed());
                let cmd = self.command(
                    run,
                    exec,
                    &script.interpreter,
                    process::script_args(&script.interpreter, &script.code),
                    remaining.max(Duration::from_millis(1)),
                );
                process::run_step(&cmd, &mut on_spawn, &mut on_output, &mut should_cancel)
            };
            let outcome = match ran {
                Ok(outcome) => outcome,
                // The step could not start (missing interpreter or workdir, ...): it
                // failed; it was not interrupted.
                Err(e) => {
                    let mut failed =
                        not_started(&format!("cannot start `{}`: {e}", script.interpreter));
                    failed.duration_ms = started.elapsed().as_millis() as i64;
                    failed.output =
                        format!("{}{}", redactor.redact(&captured.finish()), failed.output);
                    return failed;
                }
            };
            report.exit_code = outcome.exit_code;
            report.signal = outcome.signal;
            report.timed_out = outcome.timed_out;
            report.cancelled = outcome.cancelled;
            if outcome.exit_code != Some(0) {
                break;
            }
        }
        if !line_buf.is_empty() {
            let text = redactor.redact(&line_buf);
            store_chunk(&text);
            obs.output(run, &gate, &text);
        }
        report.duration_ms = started.elapsed().as_millis() as i64;
        report.output = redactor.redact(&captured.finish());
        let (outputs, problems) = match std::fs::read(&output_file) {
            Ok(bytes) if bytes.is_empty() => (BTreeMap::new(), Vec::new()),
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => read_outputs(&text),
                Err(_) => (
                    BTreeMap::new(),
                    vec!["the file is not UTF-8: no variable was taken from it".to_string()],
                ),
            },
            // The step removed it: nothing to take.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (BTreeMap::new(), Vec::new()),
            Err(e) => (
                BTreeMap::new(),
                vec![format!("the file could not be read: {e}")],
            ),
        };
        report.outputs = outputs;
        for p in problems {
            let _ = write!(
                report.output,
                "\n[sop: ignored $SOP_OUTPUT line: {}]",
                redactor.redact(&p)
            );
        }
        report
    }

    /// The command of one of `exec`'s scripts: `program` with `args`, in the step's
    /// environment and working directory.
    fn command(
        &self,
        run: &Run,
        exec: &Exec,
        program: &str,
        args: Vec<String>,
        timeout: Duration,
    ) -> StepCommand {
        let ctx = self.ctx;
        let output_file = output_file_of(ctx.home, &run.id);
        StepCommand {
            program: program.to_string(),
            args,
            env: step_env(run, exec, &output_file, &ctx.config.pass_env),
            workdir: ctx.home.sop_dir(&run.sop.name).join(&exec.workdir),
            timeout,
            kill_grace: Duration::from_secs(ctx.config.kill_grace_secs),
        }
    }

    /// The first script of `exec` (the step `run`, as it will be committed, starts next)
    /// started now and held at its gate, so its interpreter starts while the step before
    /// runs or the commit that records it syncs. `None` where it cannot be held (not a shell) or not started (the
    /// step then starts after the commit, and reports why it could not).
    pub(super) fn start_ahead(&self, run: &Run, exec: &Exec) -> Option<Ahead> {
        let script = exec.scripts.first()?;
        let args = process::gated_script_args(&script.interpreter, &script.code)?;
        let timeout = Duration::from_secs(exec.timeout_secs.max(1));
        let cmd = self.command(run, exec, &script.interpreter, args, timeout);
        let gated = process::spawn_gated(cmd).ok()?;
        Some(Ahead {
            run_id: run.id.clone(),
            vars: run.vars.clone(),
            exec: exec.clone(),
            gated,
        })
    }
}

/// A step's first process started ahead of the commit that starts the step: used only if
/// that commit starts exactly `exec` of run `run_id` with the variables `vars` (and records
/// its pid); else dropped, and the process exits without running any of the step's code.
pub(super) struct Ahead {
    run_id: String,
    /// The run's variables it was started with (its environment).
    vars: BTreeMap<String, String>,
    pub(super) exec: Exec,
    pub(super) gated: process::Gated,
}

impl Ahead {
    /// Whether it was started as `exec` of `run` (as committed, or about to be) would be.
    pub(super) fn is_for(&self, run: &Run, exec: &Exec) -> bool {
        self.run_id == run.id && self.exec == *exec && self.vars == run.vars
    }
}

/// A line of step output longer than this is passed on (and redacted) in pieces.
const MAX_LINE: usize = 64 * 1024;

/// The report of a step that could not be started: a failure with the reason as output.
fn not_started(reason: &str) -> ExitReport {
    ExitReport {
        exit_code: None,
        signal: None,
        timed_out: false,
        cancelled: false,
        duration_ms: 0,
        output: format!("[sop: {reason}]"),
        outputs: BTreeMap::new(),
    }
}

/// The environment of a step: the run's variables (SPEC §9: `SOP_VAR_<NAME>` and the name
/// itself) and the `SOP_*` built-ins. Values reach the step only as environment variables.
fn step_env(
    run: &Run,
    exec: &Exec,
    output_file: &std::path::Path,
    pass_env: &[String],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = pass_env
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| (name.clone(), v)))
        .collect();
    for (k, v) in &run.vars {
        env.push((k.clone(), v.clone()));
        env.push((format!("SOP_VAR_{}", k.to_ascii_uppercase()), v.clone()));
    }
    env.push(("SOP_OUTPUT".to_string(), output_file.display().to_string()));
    env.push(("SOP_RUN_ID".to_string(), run.id.clone()));
    env.push(("SOP_NAME".to_string(), run.sop.name.clone()));
    env.push(("SOP_STEP".to_string(), exec.number.to_string()));
    env.push(("SOP_ATTEMPT".to_string(), exec.attempt.to_string()));
    env.push((
        "SOP_IDEMPOTENCY_KEY".to_string(),
        exec.idempotency_key.clone(),
    ));
    env
}

/// `name=value` lines a step appended to `$SOP_OUTPUT`, and the lines refused.
fn read_outputs(text: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut vars = BTreeMap::new();
    let mut problems = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((name, value)) = line.split_once('=') else {
            problems.push(format!("`{line}` is not `name=value`"));
            continue;
        };
        let name = name.trim();
        match check_var_name(name).and_then(|()| check_var_value(name, value)) {
            Ok(()) => {
                vars.insert(name.to_string(), value.to_string());
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    (vars, problems)
}

/// Redacts secret vars of the run and the env vars listed in `secret_env`.
pub fn redactor_for(run: &Run, config: &RunnerConfig) -> Redactor {
    let mut secrets: Vec<String> = run
        .sop
        .secret_vars()
        .filter_map(|n| run.vars.get(n).cloned())
        .collect();
    secrets.extend(
        config
            .secret_env
            .iter()
            .filter_map(|n| std::env::var(n).ok()),
    );
    Redactor::new(secrets)
}
