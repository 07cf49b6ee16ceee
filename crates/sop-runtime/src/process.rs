//! Runs one step's command as a child in its own process group (SPEC §5, §8, §9): a clean
//! environment, live output, timeout and cancel with SIGTERM → grace → SIGKILL to the whole
//! group, and no child left behind when the step ends. A shell step can be started ahead
//! of the commit that records it, held at a gate until then ([`Gated`]).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{access, getpgrp, AccessFlags, Pid};

/// How often the running step is checked for exit, timeout and cancellation.
const POLL: Duration = Duration::from_millis(100);
/// How often a group that was signalled is checked for members still alive.
const GROUP_POLL: Duration = Duration::from_millis(20);
/// How long to wait for the group to vanish after SIGKILL before giving up on it.
const AFTER_KILL: Duration = Duration::from_secs(5);
/// How long to keep reading the pipes once the group is gone. Only a process that left the
/// group (`setsid`) can still hold them open; its output is not the step's any more.
const DRAIN: Duration = Duration::from_millis(250);
/// Size of one read from a pipe (a full pipe on Linux). The pipes are read on the calling
/// thread only when `on_output` is done with the previous chunk: when it is slower than the
/// step, the pipes fill and the step blocks on its writes, so the runner's memory stays
/// bounded.
const READ_CHUNK: usize = 64 * 1024;
/// Most reads passed on between two checks of the step's state (at most 1 MiB).
const MAX_BATCH: usize = 16;
/// First sleep between exit checks once both pipes are closed: the leader usually exits a
/// few microseconds after closing them.
const FIRST_IDLE_SLEEP: Duration = Duration::from_micros(50);
/// Interpreters found on a `PATH` that are remembered (see [`locate`]).
const LOCATED_MAX: usize = 32;
/// `PATH` given to steps when the runner itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Name given to a bash, sh or zsh script as `$0`.
const SCRIPT_NAME: &str = "sop-step";

/// One step's command, ready to spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCommand {
    /// The interpreter, looked up on `PATH`: `bash`, `sh`, `zsh`, `python3`, `node`.
    pub program: String,
    /// Its arguments, normally built by [`script_args`].
    pub args: Vec<String>,
    /// Variables set on top of the clean base environment (see [`base_env`]).
    pub env: Vec<(String, String)>,
    /// Working directory of the step.
    pub workdir: PathBuf,
    /// How long the step may run before its group is terminated.
    pub timeout: Duration,
    /// How long to wait after SIGTERM before sending SIGKILL.
    pub kill_grace: Duration,
}

impl StepCommand {
    /// Where `program` is found on the step's `PATH` (its own, else the runner's), if it
    /// can be found here (see [`locate`]).
    fn program_path(&self) -> Option<PathBuf> {
        let path = self
            .env
            .iter()
            .rev()
            .find(|(name, _)| name == "PATH")
            .map(|(_, value)| OsStr::new(value))
            .or_else(|| {
                base_env()
                    .iter()
                    .find(|(name, _)| name == "PATH")
                    .map(|(_, value)| value.as_os_str())
            })?;
        locate(&self.program, path)
    }
}

/// The arguments that make `interpreter` run `code` exactly as written. Variables never
/// enter the code: they reach it only through the environment.
///
/// - `bash`: `-e -o pipefail -c <code> sop-step` (`sop-step` becomes `$0`);
/// - `sh`, `zsh`: `-e -c <code> sop-step`;
/// - `python3`, `python`: `-c <code>`;
/// - `node`: `-e <code>`;
/// - anything else: `-c <code>`.
pub fn script_args(interpreter: &str, code: &str) -> Vec<String> {
    let code = code.to_string();
    match interpreter {
        "bash" => vec![
            "-e".into(),
            "-o".into(),
            "pipefail".into(),
            "-c".into(),
            code,
            SCRIPT_NAME.into(),
        ],
        "sh" | "zsh" => vec!["-e".into(), "-c".into(), code, SCRIPT_NAME.into()],
        "node" => vec!["-e".into(), code],
        _ => vec!["-c".into(), code],
    }
}

/// The gate a held step's shell passes first (see [`Gated`]): a line on standard input
/// (a pipe) opens it; end-of-file (the gate closed unopened, or sop died) ends the shell
/// before any of the code runs. Standard input is `/dev/null` again behind it, as for
/// every step. A shell that has `$SECONDS` (bash, also as `sh`; not dash) counts it from
/// the gate's opening, as it would from the start of a shell spawned then (a held shell
/// may wait for minutes). On the code's first line, so line numbers in messages stay the
/// code's own.
const GATE: &str =
    "read -r _ || exit 125; exec </dev/null; case ${SECONDS+x} in x) SECONDS=0;; esac; ";

/// [`script_args`] for a step started ahead of the commit that records it and held at a
/// gate until then ([`spawn_gated`]): for `bash` and `sh` only (the gate is shell code);
/// `None` for other interpreters, whose steps start after the commit.
pub fn gated_script_args(interpreter: &str, code: &str) -> Option<Vec<String>> {
    matches!(interpreter, "bash" | "sh").then(|| script_args(interpreter, &format!("{GATE}{code}")))
}

/// The environment every step starts from: the runner's own values of an allow-list and
/// nothing else, so the runner's secrets, proxies and tool settings do not leak into steps.
///
/// Passed through when set: `PATH` (`/usr/local/bin:/usr/bin:/bin` when unset), `HOME`,
/// `USER`, `LOGNAME`, `SHELL`, `LANG`, `LANGUAGE`, `LC_*`, `TZ`, `TERM`, `TMPDIR`. `SHELL`,
/// when the runner has none, is its user's login shell from the password database (looked
/// up once), as a login or a systemd service with `User=` would set it: bash looks it up
/// itself at every start otherwise (an NSS query per step: ~0.07 ms here, more with LDAP).
/// Deliberately not: `BASH_ENV`/`ENV` (code run before the step), `LD_*`, `PYTHON*`,
/// `NODE_*`, proxies, credentials.
///
/// Read once: sop never changes its own environment.
pub fn base_env() -> &'static [(OsString, OsString)] {
    static BASE: std::sync::OnceLock<Vec<(OsString, OsString)>> = std::sync::OnceLock::new();
    BASE.get_or_init(read_base_env)
}

fn read_base_env() -> Vec<(OsString, OsString)> {
    const NAMES: [&str; 10] = [
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR",
    ];
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(name, _)| {
            name.to_str()
                .is_some_and(|n| NAMES.contains(&n) || n.starts_with("LC_"))
        })
        .collect();
    if !env.iter().any(|(name, _)| name == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    if !env.iter().any(|(name, _)| name == "SHELL") {
        if let Some(shell) = login_shell() {
            env.push(("SHELL".into(), shell));
        }
    }
    env
}

/// The login shell of the user sop runs as, if the password database names one.
fn login_shell() -> Option<OsString> {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid()).ok()??;
    let shell = user.shell.into_os_string();
    (!shell.is_empty()).then_some(shell)
}

/// A piece of live output, in the order it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Bytes the step wrote to its standard output.
    Stdout(&'a [u8]),
    /// Bytes the step wrote to its standard error.
    Stderr(&'a [u8]),
}

/// The identity of a spawned step, to be committed before the step is waited on (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawned {
    /// Pid of the step, which is also its process group id.
    pub pid: u32,
    /// Start time of the pid (`/proc/<pid>/stat` field 22, clock ticks since boot), so a
    /// reused pid is never taken for the step; 0 where `/proc` is not available.
    pub start_time: u64,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code; `None` when the step was killed by a signal.
    pub exit_code: Option<i32>,
    /// The signal that killed the step, if one did. Also `SIGKILL` when the step could not
    /// be reaped even after SIGKILL (a process stuck in uninterruptible sleep).
    pub signal: Option<i32>,
    /// The step ran past its timeout and was terminated.
    pub timed_out: bool,
    /// The step was cancelled and terminated.
    pub cancelled: bool,
    /// From spawn until the step and its group were gone.
    pub duration: Duration,
}

/// Runs `cmd` in a new process group and waits until it and every process of its group are
/// gone.
///
/// - `on_spawn` is called right after the spawn; if it fails, the group is killed and its
///   error returned (a step whose start cannot be recorded must not run).
/// - `on_output` receives stdout and stderr chunks live, on this thread, in arrival order.
/// - `should_cancel` is polled about every 100 ms while the step runs.
///
/// On timeout or cancel the group gets SIGTERM, then SIGKILL after `kill_grace` if the step
/// is still there. When the step exits by itself, processes it left in its group (`sleep
/// 100 &`) get the same treatment, so no child outlives its step.
pub fn run_step(
    cmd: &StepCommand,
    on_spawn: &mut dyn FnMut(Spawned) -> io::Result<()>,
    on_output: &mut dyn FnMut(Chunk<'_>),
    should_cancel: &mut dyn FnMut() -> bool,
) -> io::Result<Outcome> {
    let mut started = start(cmd, Stdio::null())?;
    if let Err(e) = on_spawn(started.spawned) {
        abandon(&mut started.child, started.pgid);
        return Err(e);
    }
    started.supervise(cmd, on_output, should_cancel)
}

/// A step process started ahead of the commit that records it, held at its gate: its
/// interpreter has started, none of its code has run (see [`gated_script_args`]). Either
/// [`Gated::run`] opens the gate, or dropping it closes the gate and the process exits
/// without running anything (also when this process dies: the gate reads end-of-file).
pub struct Gated {
    /// `None` once [`Gated::run`] took it.
    started: Option<Started>,
    spawned: Spawned,
    gate: Option<ChildStdin>,
    /// The CPUs the process inherited, while [`steer_away`] keeps it off some of them.
    cpus: Option<CpuSet>,
    cmd: StepCommand,
    /// The host's name when the shell started (bash sets `$HOSTNAME` from it).
    host: Option<OsString>,
}

/// Variables a held shell cannot honour as a shell spawned later would: they make it run
/// code or trace before its `-c` code begins (`BASH_ENV`, `ENV`, `SHELLOPTS`, `BASHOPTS`),
/// or set start-up state the gate resets (`SECONDS`). A step whose environment sets one
/// (through `pass_env` or a run variable) is not held.
const NOT_HELD: [&str; 5] = ["BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "SECONDS"];

/// Starts `cmd`, whose arguments come from [`gated_script_args`], held at its gate; refused
/// when its environment sets what a held shell cannot honour (see [`NOT_HELD`]).
pub fn spawn_gated(cmd: StepCommand) -> io::Result<Gated> {
    if let Some((name, _)) = cmd.env.iter().find(|(n, _)| NOT_HELD.contains(&n.as_str())) {
        return Err(io::Error::other(format!(
            "`{name}` is set: a shell held at a gate would not honour it as one started later"
        )));
    }
    let host = host_name();
    let mut started = start(&cmd, Stdio::piped())?;
    let gate = started.child.stdin.take();
    let cpus = steer_away(started.pgid);
    Ok(Gated {
        spawned: started.spawned,
        started: Some(started),
        gate,
        cpus,
        cmd,
        host,
    })
}

/// Whether a line of `/proc/<pid>/maps` maps a file removed or replaced since: not shared
/// anonymous memory (`/dev/zero`, `memfd:`, `SYSV` segments), which shows as deleted too.
fn replaced_file(line: &str) -> bool {
    let Some(path) = line.strip_suffix(" (deleted)") else {
        return false;
    };
    let path = path.split_whitespace().nth(5).unwrap_or("");
    !(path.starts_with("/dev/zero") || path.starts_with("/memfd:") || path.starts_with("/SYSV"))
}

/// Whether no signal waits to be taken by the process of `proc_dir` (`SigPnd` and `ShdPnd`
/// in its `status`). A signal is taken only when its target next runs: a held shell that a
/// step killed (`kill -KILL`) looks alive until then, for milliseconds on a busy machine,
/// and its gate would open on a process about to die.
fn no_signal_pending(proc_dir: &Path) -> bool {
    std::fs::read_to_string(proc_dir.join("status")).is_ok_and(|status| {
        status
            .lines()
            .filter_map(|l| {
                l.strip_prefix("SigPnd:")
                    .or_else(|| l.strip_prefix("ShdPnd:"))
            })
            .all(|mask| mask.trim().bytes().all(|b| b == b'0'))
    })
}

/// The host's name (`uname`), if it can be read.
fn host_name() -> Option<OsString> {
    nix::sys::utsname::uname()
        .ok()
        .map(|u| u.nodename().to_os_string())
}

/// Keeps a held step's start-up off the CPU this thread runs on, so that the two overlap.
/// Left to itself, the scheduler soon starts the child on its parent's CPU, where it waits
/// for the parent's commit: from ~100 ms into a run its steps were ~0.3 ms slower
/// (`bench/`, 2026-11-26). Returns the CPUs to give back when the gate opens (the step's
/// code runs with the CPUs it inherited); `None` where there is no other CPU allowed or
/// the affinity cannot be set.
fn steer_away(child: Pid) -> Option<CpuSet> {
    let inherited = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let mut away = inherited;
    away.unset(sched_getcpu().ok()?).ok()?;
    let any = (0..CpuSet::count()).any(|cpu| away.is_set(cpu).unwrap_or(false));
    (any && sched_setaffinity(child, &away).is_ok()).then_some(inherited)
}

impl Gated {
    /// The pid and start time to record before the gate opens.
    pub fn spawned(&self) -> Spawned {
        self.spawned
    }

    /// Whether what the held process took in as it started is still what a spawn of its
    /// command now would take in: it is alive; its working directory is the step's (not
    /// one removed or replaced since); it runs the interpreter found on its `PATH` now, and
    /// no file it mapped (the interpreter, its libraries) was removed or replaced since
    /// (an upgrade); the host's name is the same. `false` when that cannot be told. The
    /// held process keeps its directory and program file alive, so equal device and inode
    /// numbers mean the very same ones. Not checked: locale files (a shell reads them as
    /// it starts) and other files a shell reads at start-up.
    pub fn is_current(&self) -> bool {
        let Some(started) = self.started.as_ref() else {
            return false;
        };
        // Not reaped here: `Drop` must not signal the group of a reaped process.
        let alive = waitid(
            Id::Pid(started.pgid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        );
        if !matches!(alive, Ok(WaitStatus::StillAlive)) {
            return false;
        }
        let Some(program) = started.program_path.as_deref() else {
            return false;
        };
        let same = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        };
        let proc_dir = PathBuf::from(format!("/proc/{}", started.spawned.pid));
        let nothing_replaced = std::fs::read_to_string(proc_dir.join("maps"))
            .is_ok_and(|maps| !maps.lines().any(replaced_file));
        no_signal_pending(&proc_dir)
            && same(&proc_dir.join("cwd"), &self.cmd.workdir)
            && same(&proc_dir.join("exe"), program)
            && self.cmd.program_path().as_deref() == Some(program)
            && nothing_replaced
            && self.host.is_some()
            && host_name() == self.host
    }

    /// Opens the gate and runs the step as [`run_step`] does (its start was recorded with
    /// [`Gated::spawned`]); the timeout counts from now. `on_open` is called as soon as the
    /// step's code may run.
    pub fn run(
        mut self,
        on_open: &mut dyn FnMut(),
        on_output: &mut dyn FnMut(Chunk<'_>),
        should_cancel: &mut dyn FnMut() -> bool,
    ) -> io::Result<Outcome> {
        let Some(mut started) = self.started.take() else {
            return Err(io::Error::other("the step was already run"));
        };
        if let Some(cpus) = self.cpus.take() {
            // ESRCH: it exited already (its first line did not parse).
            if let Err(e) = sched_setaffinity(started.pgid, &cpus).or_else(|e| match e {
                Errno::ESRCH => Ok(()),
                e => Err(e),
            }) {
                tracing::warn!(
                    "step pid {}: cannot give its CPUs back ({e}); it runs on fewer",
                    started.pgid
                );
            }
        }
        if let Some(mut gate) = self.gate.take() {
            // A step that exited already (its first line did not parse) reads nothing: its
            // exit is reported as it is.
            let _ = gate.write_all(b"\n");
        }
        started.code_from = Instant::now();
        on_open();
        started.supervise(&self.cmd, on_output, should_cancel)
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        // Never run: the gate closes unopened, and the group goes.
        if let Some(mut started) = self.started.take() {
            drop(self.gate.take());
            abandon(&mut started.child, started.pgid);
        }
    }
}

/// A spawned step, not yet supervised.
struct Started {
    child: Child,
    pgid: Pid,
    spawned: Spawned,
    /// When the step's code was let run: its timeout counts from here.
    code_from: Instant,
    /// The interpreter's file, where it was found on the step's `PATH` here.
    program_path: Option<PathBuf>,
}

/// Spawns `cmd` in a new process group with `stdin`.
fn start(cmd: &StepCommand, stdin: Stdio) -> io::Result<Started> {
    let base = base_env();
    // Found here on the step's `PATH`, the interpreter is started by path, which lets std
    // use `posix_spawn` (no copy of this process) instead of fork + exec.
    let located = cmd.program_path();
    let program = located
        .as_deref()
        .map_or(OsStr::new(&cmd.program), Path::as_os_str);
    let before = boot_clock();
    // Its `argv[0]` is that path too, as a `#!` line gives it: bash then does not search
    // `PATH` for itself as it starts (a `stat` per entry). The name stays the last part.
    let mut child = Command::new(program)
        .arg0(program)
        .args(&cmd.args)
        .env_clear()
        .envs(base.iter().map(|(k, v)| (k, v)))
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&cmd.workdir)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot start `{}` in `{}`: {e}",
                    cmd.program,
                    cmd.workdir.display()
                ),
            )
        })?;
    let after = boot_clock();
    let started = Instant::now();
    let pid = child.id();
    let Some(group) = to_pid(pid) else {
        // Cannot happen on Unix (pids fit in i32); refuse rather than signal a wrong group.
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other(format!(
            "pid {pid} of `{}` is out of range",
            cmd.program
        )));
    };
    let spawned = Spawned {
        pid,
        start_time: start_time_between(before, after)
            .or_else(|| process_start_time(pid))
            .unwrap_or(0),
    };
    Ok(Started {
        child,
        pgid: group,
        spawned,
        code_from: started,
        program_path: located,
    })
}

impl Started {
    /// Watches the step until it and its group are gone (see [`run_step`]).
    fn supervise(
        mut self,
        cmd: &StepCommand,
        on_output: &mut dyn FnMut(Chunk<'_>),
        should_cancel: &mut dyn FnMut() -> bool,
    ) -> io::Result<Outcome> {
        let (Some(stdout), Some(stderr)) = (self.child.stdout.take(), self.child.stderr.take())
        else {
            abandon(&mut self.child, self.pgid);
            return Err(io::Error::other("the step's output pipes are missing"));
        };
        let mut step = Supervisor {
            child: self.child,
            pgid: self.pgid,
            pipes: Pipes::new(stdout, stderr),
            status: None,
            deadline: self.code_from.checked_add(cmd.timeout),
            kill_grace: cmd.kill_grace,
            timed_out: false,
            cancelled: false,
            idle_sleep: FIRST_IDLE_SLEEP,
        };
        step.run(on_output, should_cancel)?;
        let status = step.status;
        Ok(Outcome {
            exit_code: status.and_then(|s| s.code()),
            // No status only when the step could not be reaped even after SIGKILL.
            signal: status.map_or(Some(Signal::SIGKILL as i32), |s| s.signal()),
            timed_out: step.timed_out,
            cancelled: step.cancelled,
            duration: self.code_from.elapsed(),
        })
    }
}

/// Where `execvp` would find `program` on `path` (the step's `PATH`): the first regular,
/// executable file of that name. `None` when it is found nowhere, or when `program` holds a
/// `/` or `path` a relative directory (those depend on the step's working directory): std
/// then searches itself, in the child, and reports a failure exactly as before.
///
/// Findings are remembered per (`PATH`, name) and checked again before each use, so an
/// interpreter that moved is looked for anew.
fn locate(program: &str, path: &OsStr) -> Option<PathBuf> {
    static LOCATED: Mutex<Vec<(OsString, String, PathBuf)>> = Mutex::new(Vec::new());
    if program.is_empty() || program.contains('/') {
        return None;
    }
    if !std::env::split_paths(path).all(|dir| dir.is_absolute()) {
        return None;
    }
    let remembered = LOCATED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(p, name, _)| p == path && name == program)
        .map(|(_, _, found)| found.clone());
    if let Some(found) = remembered {
        if access(&found, AccessFlags::X_OK).is_ok() {
            return Some(found);
        }
    }
    let found = std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate.is_file() && access(candidate.as_path(), AccessFlags::X_OK).is_ok()
        })?;
    let mut located = LOCATED.lock().unwrap_or_else(PoisonError::into_inner);
    located.retain(|(p, name, _)| !(p == path && name == program));
    if located.len() >= LOCATED_MAX {
        located.clear();
    }
    located.push((path.to_os_string(), program.to_string(), found.clone()));
    Some(found)
}

/// The step's stdout and stderr, read on the calling thread as data arrives (`poll(2)`).
struct Pipes {
    /// The pipes not at their end yet.
    open: Vec<(Stream, File)>,
    buf: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn chunk(self, bytes: &[u8]) -> Chunk<'_> {
        match self {
            Stream::Stdout => Chunk::Stdout(bytes),
            Stream::Stderr => Chunk::Stderr(bytes),
        }
    }
}

impl Pipes {
    fn new(stdout: ChildStdout, stderr: ChildStderr) -> Self {
        Pipes {
            open: vec![
                (Stream::Stdout, File::from(OwnedFd::from(stdout))),
                (Stream::Stderr, File::from(OwnedFd::from(stderr))),
            ],
            buf: vec![0; READ_CHUNK],
        }
    }

    fn any_open(&self) -> bool {
        !self.open.is_empty()
    }

    /// Waits up to `timeout` for a pipe to be readable, then reads once from each readable
    /// pipe and passes on what was read. Returns whether anything was ready.
    fn read_ready(&mut self, timeout: Duration, on_output: &mut dyn FnMut(Chunk<'_>)) -> bool {
        let mut fds: Vec<PollFd<'_>> = self
            .open
            .iter()
            .map(|(_, pipe)| PollFd::new(pipe.as_fd(), PollFlags::POLLIN))
            .collect();
        let ready: Vec<bool> = match poll(&mut fds, poll_timeout(timeout)) {
            Ok(0) | Err(Errno::EINTR) => return false,
            Ok(_) => fds
                .iter()
                .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
                .collect(),
            Err(_) => {
                // Cannot happen with valid descriptors; stop reading rather than spin.
                drop(fds);
                self.open.clear();
                return true;
            }
        };
        drop(fds);
        let Pipes { open, buf } = self;
        let mut ready = ready.into_iter();
        open.retain_mut(|(stream, pipe)| {
            if ready.next() != Some(true) {
                return true;
            }
            match pipe.read(buf) {
                Ok(0) => false,
                Ok(n) => {
                    on_output(stream.chunk(&buf[..n]));
                    true
                }
                // An error ends the pipe, as its end does.
                Err(e) => e.kind() == io::ErrorKind::Interrupted,
            }
        });
        true
    }
}

/// `timeout` in whole milliseconds for `poll(2)`, rounded up so a short wait does not
/// become a busy loop, and at most [`POLL`].
fn poll_timeout(timeout: Duration) -> PollTimeout {
    let millis = timeout.min(POLL).as_micros().div_ceil(1000);
    PollTimeout::from(u16::try_from(millis).unwrap_or(u16::MAX))
}

/// Kills the group of a step that must not run and reaps its leader.
fn abandon(child: &mut Child, pgid: Pid) {
    let _ = killpg(pgid, Signal::SIGKILL);
    let _ = child.wait();
}

/// Where a running step is in its life.
#[derive(Clone, Copy)]
enum Phase {
    /// Running; nothing was signalled.
    Running,
    /// SIGTERM was sent to the group; SIGKILL follows at the instant given.
    Terminating(Instant),
    /// SIGKILL was sent; the group is given up on at the instant given.
    Killed(Instant),
    /// The leader is reaped and the group gone; remaining output is read until then.
    Draining(Instant),
}

/// The state of one step while [`run_step`] waits on it.
struct Supervisor {
    child: Child,
    pgid: Pid,
    pipes: Pipes,
    status: Option<ExitStatus>,
    deadline: Option<Instant>,
    kill_grace: Duration,
    timed_out: bool,
    cancelled: bool,
    /// Sleep between exit checks once both pipes are closed: a leader usually exits right
    /// after closing them, so start short ([`FIRST_IDLE_SLEEP`]) and back off to [`POLL`].
    idle_sleep: Duration,
}

impl Supervisor {
    fn run(
        &mut self,
        on_output: &mut dyn FnMut(Chunk<'_>),
        should_cancel: &mut dyn FnMut() -> bool,
    ) -> io::Result<()> {
        let mut phase = Phase::Running;
        let mut next_cancel_check = Instant::now() + POLL;
        loop {
            let now = Instant::now();
            if let Phase::Draining(until) = phase {
                if !self.pipes.any_open() || now >= until {
                    return Ok(());
                }
            }
            let wake = match phase {
                Phase::Running => self
                    .deadline
                    .map_or(next_cancel_check, |d| d.min(next_cancel_check)),
                Phase::Terminating(at) | Phase::Killed(at) | Phase::Draining(at) => {
                    at.min(now + GROUP_POLL)
                }
            };
            self.receive(wake.saturating_duration_since(now).min(POLL), on_output);
            if self.status.is_none() {
                match self.child.try_wait() {
                    Ok(status) => self.status = status,
                    Err(e) => {
                        // The step cannot be watched any more: it must not run unwatched.
                        let _ = killpg(self.pgid, Signal::SIGKILL);
                        return Err(e);
                    }
                }
            }
            let now = Instant::now();
            phase = match phase {
                Phase::Running => {
                    if self.status.is_some() {
                        self.terminate_leftovers(now)
                    } else if self.deadline.is_some_and(|d| now >= d) {
                        self.timed_out = true;
                        self.terminate(now)
                    } else if now >= next_cancel_check {
                        next_cancel_check = now + POLL;
                        if should_cancel() {
                            self.cancelled = true;
                            self.terminate(now)
                        } else {
                            Phase::Running
                        }
                    } else {
                        Phase::Running
                    }
                }
                Phase::Terminating(kill_at) => {
                    if self.gone() {
                        Phase::Draining(now + DRAIN)
                    } else if now >= kill_at {
                        let _ = killpg(self.pgid, Signal::SIGKILL);
                        Phase::Killed(now + AFTER_KILL)
                    } else {
                        phase
                    }
                }
                Phase::Killed(give_up_at) => {
                    if self.gone() || now >= give_up_at {
                        // Past `give_up_at` something in the group cannot die (uninterruptible
                        // sleep); the step is over for us either way.
                        Phase::Draining(now + DRAIN)
                    } else {
                        phase
                    }
                }
                Phase::Draining(_) => phase,
            };
        }
    }

    /// Waits up to `timeout` for output and passes on what is ready, at most
    /// [`MAX_BATCH`] reads so a step that floods its output is still timed and cancelled.
    fn receive(&mut self, timeout: Duration, on_output: &mut dyn FnMut(Chunk<'_>)) {
        if !self.pipes.any_open() {
            thread::sleep(timeout.min(self.idle_sleep));
            self.idle_sleep = (self.idle_sleep * 2).min(POLL);
            return;
        }
        let mut wait = timeout;
        for _ in 0..MAX_BATCH {
            if !self.pipes.read_ready(wait, on_output) || !self.pipes.any_open() {
                return;
            }
            wait = Duration::ZERO;
        }
    }

    /// Timeout or cancel: SIGTERM to the group, SIGKILL after the grace.
    fn terminate(&self, now: Instant) -> Phase {
        let _ = killpg(self.pgid, Signal::SIGTERM);
        Phase::Terminating(later(now, self.kill_grace))
    }

    /// The leader exited by itself: whatever it left in its group is terminated too.
    fn terminate_leftovers(&self, now: Instant) -> Phase {
        if has_live_members(self.pgid) {
            self.terminate(now)
        } else {
            Phase::Draining(now + DRAIN)
        }
    }

    /// Whether the leader is reaped and no process of the group is left.
    fn gone(&mut self) -> bool {
        if self.status.is_none() {
            match self.child.try_wait() {
                Ok(status) => self.status = status,
                Err(_) => return false,
            }
        }
        self.status.is_some() && !has_live_members(self.pgid)
    }
}

/// The start time of `pid`: field 22 of `/proc/<pid>/stat`, in clock ticks since boot.
/// `None` when the process does not exist or `/proc` is not available.
pub fn process_start_time(pid: u32) -> Option<u64> {
    ProcStat::read(pid).map(|s| s.start_time)
}

/// `CLOCK_BOOTTIME`, which the kernel stamps a new process with.
fn boot_clock() -> Option<Duration> {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .ok()
        .map(Duration::from)
}

/// The start time `/proc/<pid>/stat` shows for a process forked between two readings of
/// [`boot_clock`]: the kernel shows the boot clock at the fork in clock ticks, so when both
/// readings fall in the same tick, so does the start. `None` when they do not (a spawn
/// that crossed a tick boundary, a few percent of them) or the clock or the tick length is
/// unknown: then `/proc` is read, as it otherwise would be for every step (that read was
/// ~2.6 % of a daemon's CPU in a drain).
fn start_time_between(before: Option<Duration>, after: Option<Duration>) -> Option<u64> {
    static TICK_NS: std::sync::OnceLock<Option<u128>> = std::sync::OnceLock::new();
    let tick = (*TICK_NS.get_or_init(|| {
        // `/proc` shows `nsec / (NSEC_PER_SEC / USER_HZ)` when USER_HZ divides a second.
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
        let hz = u128::try_from(hz).ok().filter(|hz| *hz > 0)?;
        (1_000_000_000 % hz == 0 && proc_available()).then_some(1_000_000_000 / hz)
    }))?;
    let (before, after) = (before?.as_nanos() / tick, after?.as_nanos() / tick);
    (before == after).then_some(u64::try_from(before).ok()?)
}

/// Whether `pid` is a live process (not a zombie) that started at `start_time`: a pid that
/// was reused by another process is never taken for the one recorded.
pub fn is_same_process(pid: u32, start_time: u64) -> bool {
    ProcStat::read(pid).is_some_and(|s| s.is_live() && s.start_time == start_time)
}

/// Whether a process with this pid exists and has not exited. A zombie (exited, not yet
/// reaped by its parent) counts as gone. Without `/proc`, any process the kernel still
/// knows counts as alive.
pub fn pid_alive(pid: u32) -> bool {
    if proc_available() {
        return ProcStat::read(pid).is_some_and(|s| s.is_live());
    }
    to_pid(pid).is_some_and(|p| matches!(kill(p, None), Ok(()) | Err(Errno::EPERM)))
}

/// Terminates the process group led by `pid` (SIGTERM, up to `grace` for it to go, then
/// SIGKILL), but only if `pid` is still the process that started at `start_time`. Returns
/// whether the group was signalled. Never signals the caller's own group, pid 0 or pid 1.
pub fn kill_group_if_same(pid: u32, start_time: u64, grace: Duration) -> bool {
    let Some(group) = to_pid(pid) else {
        return false;
    };
    if group == getpgrp() || !is_same_process(pid, start_time) {
        return false;
    }
    if killpg(group, Signal::SIGTERM).is_err() {
        return false;
    }
    let kill_at = later(Instant::now(), grace);
    while has_live_members(group) {
        if Instant::now() >= kill_at {
            let _ = killpg(group, Signal::SIGKILL);
            break;
        }
        thread::sleep(GROUP_POLL);
    }
    true
}

/// `now + wait`, with absurd waits (a grace of `Duration::MAX`) capped at about 136 years
/// instead of overflowing.
fn later(now: Instant, wait: Duration) -> Instant {
    const MAX_WAIT: Duration = Duration::from_secs(1 << 32);
    now.checked_add(wait.min(MAX_WAIT)).unwrap_or(now)
}

/// `pid` as a nix `Pid`, refusing 0 and 1 (signalling "group 0" would hit the caller's own
/// group, and init is never a step).
fn to_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|p| *p > 1)
        .map(Pid::from_raw)
}

fn proc_available() -> bool {
    std::path::Path::new("/proc/self/stat").exists()
}

/// Whether any live (non-zombie) process is in process group `pgid`. Zombies are skipped:
/// an orphan that died may never be reaped where pid 1 is not a real init, and it holds
/// nothing. Without `/proc`, any process the kernel still knows in the group counts.
pub fn group_alive(pgid: u32) -> bool {
    to_pid(pgid).is_some_and(has_live_members)
}

fn has_live_members(pgid: Pid) -> bool {
    // Fast path: the kernel knows no process of the group at all (the usual case once a
    // step's leader is reaped), so there is nothing to scan.
    if killpg(pgid, None) == Err(Errno::ESRCH) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return matches!(killpg(pgid, None), Ok(()) | Err(Errno::EPERM));
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(ProcStat::read)
        .any(|s| s.pgrp == pgid.as_raw() && s.is_live())
}

/// The fields of `/proc/<pid>/stat` used here.
struct ProcStat {
    state: char,
    pgrp: i32,
    start_time: u64,
}

impl ProcStat {
    fn read(pid: u32) -> Option<Self> {
        // Read into a buffer rather than `read_to_string`, which asks the size first (0 for
        // `/proc` files): the line is short and normally comes whole from the first read.
        let mut file = File::open(format!("/proc/{pid}/stat")).ok()?;
        let mut buf = [0u8; 4096];
        let mut len = 0;
        while len < buf.len() && !buf[..len].ends_with(b"\n") {
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        // The command name may be any bytes; the fields read are after it.
        Self::parse(&String::from_utf8_lossy(&buf[..len]))
    }

    /// Parses `pid (comm) state ppid pgrp ... starttime ...`. The command name may contain
    /// spaces and parentheses, so fields are counted after the last `)`.
    fn parse(stat: &str) -> Option<Self> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `fields[0]` is field 3 (state), so field N is `fields[N - 3]`.
        Some(Self {
            state: fields.first()?.chars().next()?,
            pgrp: fields.get(2)?.parse().ok()?,
            start_time: fields.get(19)?.parse().ok()?,
        })
    }

    /// Not a zombie (`Z`) nor dead (`X`, `x`).
    fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_is_told_from_shared_memory_in_maps() {
        let line = |path: &str| format!("7f00-7f01 r-xp 00000000 fd:01 1234  {path}");
        for (path, replaced) in [
            ("/usr/lib/x86_64-linux-gnu/libtinfo.so.6.4", false),
            ("/usr/lib/x86_64-linux-gnu/libtinfo.so.6.4 (deleted)", true),
            ("/usr/bin/bash (deleted)", true),
            ("/dev/zero (deleted)", false),
            ("/memfd:buffer (deleted)", false),
            ("/SYSV00000000 (deleted)", false),
            ("[heap]", false),
        ] {
            assert_eq!(replaced_file(&line(path)), replaced, "{path}");
        }
    }

    #[test]
    fn parses_stat_with_tricky_command_name() {
        let stat = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 2";
        let s = ProcStat::parse(stat).expect("parses");
        assert_eq!(s.state, 'S');
        assert_eq!(s.pgrp, 4242);
        assert_eq!(s.start_time, 987_654);
        assert!(ProcStat::parse("12 (x) S 1").is_none());
        assert!(ProcStat::parse("garbage").is_none());
    }

    #[test]
    fn script_args_per_interpreter() {
        assert_eq!(
            script_args("bash", "echo hi"),
            ["-e", "-o", "pipefail", "-c", "echo hi", "sop-step"]
        );
        assert_eq!(script_args("sh", "x"), ["-e", "-c", "x", "sop-step"]);
        assert_eq!(script_args("zsh", "x"), ["-e", "-c", "x", "sop-step"]);
        assert_eq!(script_args("python3", "x"), ["-c", "x"]);
        assert_eq!(script_args("node", "x"), ["-e", "x"]);
    }

    #[test]
    fn locate_finds_what_execvp_would_and_notices_a_removal() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let second = dir.path().join("second");
        for d in [&first, &second] {
            std::fs::create_dir(d).unwrap();
        }
        // Not executable, and a directory: both skipped, as `execvp` skips them.
        std::fs::write(first.join("interp"), "").unwrap();
        std::fs::create_dir(first.join("other")).unwrap();
        let exe = |path: &Path| {
            std::fs::write(path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        exe(&second.join("interp"));
        exe(&second.join("other"));
        let path = std::env::join_paths([&first, &second]).unwrap();
        assert_eq!(locate("interp", &path), Some(second.join("interp")));
        assert_eq!(locate("other", &path), Some(second.join("other")));
        // Remembered, but checked again: a removed interpreter is not used.
        std::fs::remove_file(second.join("interp")).unwrap();
        assert_eq!(locate("interp", &path), None);
        exe(&first.join("interp"));
        assert_eq!(locate("interp", &path), Some(first.join("interp")));
        assert_eq!(locate("missing", &path), None);
        // Left to std: names with a `/`, and `PATH`s relative to the working directory.
        assert_eq!(locate("second/interp", dir.path().as_os_str()), None);
        let relative = std::env::join_paths([Path::new("second"), &second]).unwrap();
        assert_eq!(locate("other", &relative), None);
    }

    #[test]
    fn a_detached_process_holding_the_pipes_does_not_hold_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = StepCommand {
            program: "bash".into(),
            // It left the group, so it is not the step's to kill; it keeps the pipes open.
            args: script_args("bash", "setsid sleep 5 &\nsleep 0.2\necho done"),
            env: Vec::new(),
            workdir: dir.path().to_path_buf(),
            timeout: Duration::from_secs(20),
            kill_grace: Duration::from_secs(1),
        };
        let mut out = Vec::new();
        let started = Instant::now();
        let outcome = run_step(
            &cmd,
            &mut |_| Ok(()),
            &mut |chunk| {
                if let Chunk::Stdout(b) = chunk {
                    out.extend_from_slice(b);
                }
            },
            &mut || false,
        )
        .unwrap();
        assert_eq!(outcome.exit_code, Some(0));
        assert_eq!(out, b"done\n");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn refuses_pid_zero_and_one() {
        assert!(to_pid(0).is_none());
        assert!(to_pid(1).is_none());
        assert!(to_pid(u32::MAX).is_none());
        assert!(!kill_group_if_same(0, 0, Duration::ZERO));
    }
}
