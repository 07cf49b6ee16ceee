//! Steps run as real processes: exit codes, the clean environment, timeout, cancel, process
//! groups left behind, live output and its bounded capture.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sop_runtime::output::BoundedOutput;
use sop_runtime::process::{
    gated_script_args, is_same_process, kill_group_if_same, pid_alive, process_start_time,
    run_step, script_args, spawn_gated, Chunk, Outcome, Spawned, StepCommand,
};

/// What one step did, as seen through `run_step`'s callbacks.
struct Ran {
    outcome: Outcome,
    spawned: Spawned,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Both streams in arrival order, through the bounded capture the engine uses.
    combined: String,
    took: Duration,
}

struct Step<'a> {
    program: &'a str,
    code: &'a str,
    env: Vec<(String, String)>,
    dir: &'a Path,
    timeout: Duration,
    grace: Duration,
    /// Cancel once the output so far contains this text.
    cancel_when: Option<&'a str>,
}

impl<'a> Step<'a> {
    fn new(program: &'a str, code: &'a str, dir: &'a Path) -> Self {
        Step {
            program,
            code,
            env: Vec::new(),
            dir,
            timeout: Duration::from_secs(30),
            grace: Duration::from_secs(10),
            cancel_when: None,
        }
    }

    fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    fn command(&self) -> StepCommand {
        StepCommand {
            program: self.program.to_string(),
            args: script_args(self.program, self.code),
            env: self.env.clone(),
            workdir: self.dir.to_path_buf(),
            timeout: self.timeout,
            kill_grace: self.grace,
        }
    }

    fn run(&self) -> Ran {
        let started = Instant::now();
        let mut spawned = None;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut captured = BoundedOutput::new(1 << 20);
        let seen = Cell::new(false);
        let outcome = run_step(
            &self.command(),
            &mut |s| {
                spawned = Some(s);
                Ok(())
            },
            &mut |chunk| {
                match chunk {
                    Chunk::Stdout(b) => {
                        stdout.extend_from_slice(b);
                        captured.push(b);
                    }
                    Chunk::Stderr(b) => {
                        stderr.extend_from_slice(b);
                        captured.push(b);
                    }
                }
                if let Some(text) = self.cancel_when {
                    seen.set(captured.finish().contains(text));
                }
            },
            &mut || seen.get(),
        )
        .expect("run_step");
        Ran {
            outcome,
            spawned: spawned.expect("on_spawn was called"),
            stdout,
            stderr,
            combined: captured.finish(),
            took: started.elapsed(),
        }
    }
}

impl Step<'_> {
    /// The command held at its gate (see `spawn_gated`).
    fn gated(&self) -> StepCommand {
        StepCommand {
            args: gated_script_args(self.program, self.code).expect("a shell"),
            ..self.command()
        }
    }
}

fn stdout_of(ran: &Ran) -> String {
    String::from_utf8_lossy(&ran.stdout).into_owned()
}

/// Pids of the live (non-zombie) processes in process group `group`, from `/proc`. Zombies are
/// skipped: where pid 1 is not a real init, dead orphans may never be reaped.
fn group_members(group: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.len() > 2 && fields[2] == group.to_string() && !matches!(fields[0], "Z" | "X") {
            found.push(pid);
        }
    }
    found
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

#[test]
fn exit_codes_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    for (code, expected) in [("true", 0), ("exit 1", 1), ("exit 42", 42)] {
        let ran = Step::new("bash", code, dir.path()).run();
        assert_eq!(ran.outcome.exit_code, Some(expected), "{code}");
        assert_eq!(ran.outcome.signal, None);
        assert!(!ran.outcome.timed_out && !ran.outcome.cancelled);
    }
}

#[test]
fn death_by_signal_has_no_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let ran = Step::new("bash", "kill -KILL $$", dir.path()).run();
    assert_eq!(ran.outcome.exit_code, None);
    assert_eq!(ran.outcome.signal, Some(9));
}

#[test]
fn bash_runs_with_errexit_and_pipefail() {
    let dir = tempfile::tempdir().unwrap();
    let ran = Step::new("bash", "false | true\necho after", dir.path()).run();
    assert_eq!(ran.outcome.exit_code, Some(1));
    assert_eq!(stdout_of(&ran), "");

    let ran = Step::new("bash", "false\necho after", dir.path()).run();
    assert_eq!(ran.outcome.exit_code, Some(1));
    assert_eq!(stdout_of(&ran), "");

    let ran = Step::new("sh", "false\necho after", dir.path()).run();
    assert_eq!(ran.outcome.exit_code, Some(1));
    assert_eq!(stdout_of(&ran), "");
}

#[test]
fn values_reach_the_step_as_exact_bytes_never_as_code() {
    let dir = tempfile::tempdir().unwrap();
    let tricky = [
        "$(touch pwned)",
        "; touch pwned",
        "`touch pwned`",
        "a\nb\n\ntouch pwned\n",
        "it's \"quoted\" \\ back",
        "' ; touch pwned ; '",
        "\" ; touch pwned ; \"",
        "${IFS}touch${IFS}pwned",
        "-n",
        "*",
        " leading and trailing ",
        "ünïcødé ✓",
    ];
    for value in tricky {
        let ran = Step::new(
            "bash",
            r#"printf '%s' "$TARGET"; printf '|'; printf '%s' "$SOP_VAR_TARGET""#,
            dir.path(),
        )
        .env("TARGET", value)
        .env("SOP_VAR_TARGET", value)
        .run();
        assert_eq!(ran.outcome.exit_code, Some(0), "{value:?}");
        assert_eq!(stdout_of(&ran), format!("{value}|{value}"), "{value:?}");
        // Unquoted use in the script still only splits and globs; it never runs the value.
        let ran = Step::new("sh", "echo $TARGET > /dev/null", dir.path())
            .env("TARGET", value)
            .run();
        assert_eq!(ran.outcome.exit_code, Some(0), "{value:?}");
        assert!(
            !dir.path().join("pwned").exists(),
            "value {value:?} was executed"
        );
    }
}

#[test]
fn only_the_allow_list_of_the_parent_environment_is_passed() {
    let dir = tempfile::tempdir().unwrap();
    let ran = Step::new("bash", "env -0", dir.path())
        .env("MY_VAR", "mine")
        .run();
    assert_eq!(ran.outcome.exit_code, Some(0));
    let names: Vec<String> = ran
        .stdout
        .split(|b| *b == 0)
        .filter_map(|entry| entry.iter().position(|b| *b == b'=').map(|eq| &entry[..eq]))
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "PATH"),
        "PATH is always set: {names:?}"
    );
    assert!(names.iter().any(|n| n == "MY_VAR"), "{names:?}");
    let allowed = |n: &str| {
        [
            "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR",
        ]
        .contains(&n)
            || n.starts_with("LC_")
    };
    // Set by bash itself in every shell.
    let set_by_shell = ["PWD", "OLDPWD", "SHLVL", "_"];
    let hidden: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| !allowed(name) && !set_by_shell.contains(&name.as_str()))
        .collect();
    // `cargo test` always sets some (`CARGO_*`), so this checks something.
    assert!(!hidden.is_empty());
    for name in &hidden {
        assert!(
            !names.contains(name),
            "`{name}` leaked from the runner into the step"
        );
    }
}

#[test]
fn the_interpreter_is_started_by_the_path_it_was_found_at() {
    // `argv[0]` is that path (as a `#!` line gives it), so bash need not search `PATH`.
    let dir = tempfile::tempdir().unwrap();
    let ran = Step::new(
        "bash",
        "tr '\\0' '\\n' < /proc/$$/cmdline | head -n 1",
        dir.path(),
    )
    .run();
    assert_eq!(ran.outcome.exit_code, Some(0));
    let argv0 = stdout_of(&ran);
    let argv0 = argv0.trim_end();
    assert!(
        argv0.starts_with('/') && argv0.ends_with("/bash"),
        "{argv0}"
    );
}

#[test]
fn stdin_is_empty_and_workdir_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let ran = Step::new("bash", "cat; pwd -P", dir.path()).run();
    assert_eq!(ran.outcome.exit_code, Some(0));
    let real = dir.path().canonicalize().unwrap();
    assert_eq!(stdout_of(&ran), format!("{}\n", real.display()));
}

#[test]
fn a_program_that_cannot_start_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Step::new("bash", "true", dir.path()).command();
    cmd.program = "no-such-interpreter-sop".to_string();
    let err = run_step(&cmd, &mut |_| Ok(()), &mut |_| {}, &mut || false).unwrap_err();
    assert!(
        err.to_string().contains("`no-such-interpreter-sop`"),
        "{err}"
    );
}

#[test]
fn timeout_terminates_the_step_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let mut step = Step::new("bash", "sleep 100", dir.path());
    step.timeout = Duration::from_millis(300);
    step.grace = Duration::from_secs(20);
    let ran = step.run();
    assert!(ran.outcome.timed_out);
    assert!(!ran.outcome.cancelled);
    assert_eq!(ran.outcome.exit_code, None);
    assert_eq!(ran.outcome.signal, Some(15));
    // SIGTERM is enough for `sleep`: the grace is not waited for.
    assert!(ran.took < Duration::from_secs(10), "took {:?}", ran.took);
    assert!(group_members(ran.spawned.pid).is_empty());
}

#[test]
fn a_step_ignoring_sigterm_is_killed_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let mut step = Step::new(
        "bash",
        "trap '' TERM\necho ready\nwhile true; do sleep 0.05; done",
        dir.path(),
    );
    step.grace = Duration::from_millis(700);
    step.cancel_when = Some("ready");
    let ran = step.run();
    assert!(ran.outcome.cancelled);
    assert_eq!(ran.outcome.signal, Some(9));
    assert!(
        ran.outcome.duration >= step.grace,
        "SIGKILL came before the grace: {:?}",
        ran.outcome.duration
    );
    assert!(
        ran.took < step.grace + Duration::from_secs(10),
        "took {:?}",
        ran.took
    );
    assert!(group_members(ran.spawned.pid).is_empty());
}

#[test]
fn cancel_leaves_no_process_of_the_group_alive() {
    let dir = tempfile::tempdir().unwrap();
    let mut step = Step::new(
        "bash",
        "sleep 100 &\nsleep 100 &\necho ready\nsleep 100",
        dir.path(),
    );
    step.cancel_when = Some("ready");
    let ran = step.run();
    assert!(ran.outcome.cancelled);
    assert!(!ran.outcome.timed_out);
    assert!(ran.took < Duration::from_secs(10), "took {:?}", ran.took);
    assert_eq!(group_members(ran.spawned.pid), Vec::<u32>::new());
}

#[test]
fn children_left_behind_by_a_finished_step_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    // The background `sleep` also holds the output pipes open.
    let ran = Step::new(
        "bash",
        "sleep 100 &\nsleep 100 > /dev/null 2>&1 &\necho started",
        dir.path(),
    )
    .run();
    assert_eq!(ran.outcome.exit_code, Some(0));
    assert!(!ran.outcome.timed_out && !ran.outcome.cancelled);
    assert_eq!(stdout_of(&ran), "started\n");
    assert!(ran.took < Duration::from_secs(5), "took {:?}", ran.took);
    assert_eq!(group_members(ran.spawned.pid), Vec::<u32>::new());
}

#[test]
fn on_spawn_gets_the_real_pid_and_start_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = None;
    let mut printed = Vec::new();
    let outcome = run_step(
        // The step waits for `on_spawn`, so it is surely alive while checked there.
        &Step::new(
            "bash",
            "while [ ! -e spawned ]; do sleep 0.01; done\necho $$",
            dir.path(),
        )
        .command(),
        &mut |s| {
            checked = Some((
                s,
                process_start_time(s.pid),
                is_same_process(s.pid, s.start_time),
                is_same_process(s.pid, s.start_time + 1),
                pid_alive(s.pid),
            ));
            std::fs::write(dir.path().join("spawned"), "")
        },
        &mut |chunk| {
            if let Chunk::Stdout(b) = chunk {
                printed.extend_from_slice(b);
            }
        },
        &mut || false,
    )
    .unwrap();
    assert_eq!(outcome.exit_code, Some(0));
    let (spawned, start, same, made_up, alive) = checked.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&printed),
        format!("{}\n", spawned.pid),
        "`$$` of the step"
    );
    assert!(spawned.start_time > 0);
    assert_eq!(start, Some(spawned.start_time));
    assert!(same);
    assert!(!made_up, "a made-up start time must not match");
    assert!(alive);
    assert!(
        !is_same_process(spawned.pid, spawned.start_time),
        "the step is reaped"
    );
}

#[test]
fn every_start_time_taken_at_spawn_is_the_one_proc_shows() {
    // Most are read off the boot clock around the spawn, not from `/proc`: each must still
    // be exactly what `/proc` shows (else recovery would take the step for another process).
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..100 {
        let mut seen = None;
        run_step(
            &Step::new("bash", "true", dir.path()).command(),
            // Not reaped yet: `/proc` still shows the step, exited or not.
            &mut |s| {
                seen = Some((s.start_time, process_start_time(s.pid)));
                Ok(())
            },
            &mut |_| {},
            &mut || false,
        )
        .unwrap();
        let (taken, shown) = seen.unwrap();
        assert_eq!(Some(taken), shown);
    }
}

#[test]
fn a_failing_on_spawn_kills_the_step_and_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let mut pid = 0;
    let err = run_step(
        &Step::new("bash", "sleep 100", dir.path()).command(),
        &mut |s| {
            pid = s.pid;
            Err(std::io::Error::other("store is down"))
        },
        &mut |_| {},
        &mut || false,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "store is down");
    assert!(pid > 0);
    assert!(group_members(pid).is_empty());
}

#[test]
fn output_arrives_live_and_interleaved_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // Each line waits until the runner has seen the previous one, so the order is fixed
    // and seeing it at all proves chunks are delivered while the step runs.
    let code = "echo out1\nwhile [ ! -e go1 ]; do sleep 0.01; done\necho err1 >&2\n\
                while [ ! -e go2 ]; do sleep 0.01; done\necho out2";
    let mut chunks: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut captured = BoundedOutput::new(1024);
    let outcome = run_step(
        &Step::new("bash", code, dir.path()).command(),
        &mut |_| Ok(()),
        &mut |chunk| {
            let (is_out, b) = match chunk {
                Chunk::Stdout(b) => (true, b),
                Chunk::Stderr(b) => (false, b),
            };
            chunks.push((is_out, b.to_vec()));
            captured.push(b);
            let text = captured.finish();
            if text.contains("out1") {
                std::fs::write(dir.path().join("go1"), "").unwrap();
            }
            if text.contains("err1") {
                std::fs::write(dir.path().join("go2"), "").unwrap();
            }
        },
        &mut || false,
    )
    .unwrap();
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(captured.finish(), "out1\nerr1\nout2\n");
    assert_eq!(
        chunks,
        vec![
            (true, b"out1\n".to_vec()),
            (false, b"err1\n".to_vec()),
            (true, b"out2\n".to_vec())
        ]
    );
}

#[test]
fn stdout_and_stderr_are_both_captured() {
    let dir = tempfile::tempdir().unwrap();
    let ran = Step::new("bash", "echo to-out; echo to-err >&2; exit 3", dir.path()).run();
    assert_eq!(ran.outcome.exit_code, Some(3));
    assert_eq!(stdout_of(&ran), "to-out\n");
    assert_eq!(String::from_utf8_lossy(&ran.stderr), "to-err\n");
    assert!(ran.combined.contains("to-out\n") && ran.combined.contains("to-err\n"));
}

#[test]
fn python_sh_and_node_fences_run() {
    let dir = tempfile::tempdir().unwrap();
    let ran = Step::new("sh", "echo \"sh:$X\"", dir.path())
        .env("X", "1")
        .run();
    assert_eq!(
        (ran.outcome.exit_code, stdout_of(&ran).as_str()),
        (Some(0), "sh:1\n")
    );

    let code = "import os, sys\nprint('py:' + os.environ['X'])\nsys.exit(3)";
    let ran = Step::new("python3", code, dir.path())
        .env("X", "$(touch pwned)")
        .run();
    assert_eq!(
        (ran.outcome.exit_code, stdout_of(&ran).as_str()),
        (Some(3), "py:$(touch pwned)\n")
    );
    assert!(!dir.path().join("pwned").exists());

    if on_path("node") {
        let ran = Step::new(
            "node",
            "console.log('node:' + process.env.X); process.exit(4)",
            dir.path(),
        )
        .env("X", "`x`")
        .run();
        assert_eq!(
            (ran.outcome.exit_code, stdout_of(&ran).as_str()),
            (Some(4), "node:`x`\n")
        );
    } else {
        eprintln!("skipping the node fence: `node` is not on PATH");
    }
}

#[test]
fn kill_group_if_same_checks_the_start_time() {
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new("sleep")
        .arg("100")
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = process_start_time(pid).unwrap();
    assert!(pid_alive(pid));
    assert!(!kill_group_if_same(
        pid,
        start + 12_345,
        Duration::from_millis(100)
    ));
    assert!(pid_alive(pid), "a made-up start time must not be signalled");
    assert!(kill_group_if_same(pid, start, Duration::from_secs(5)));
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(!pid_alive(pid));
    assert!(wait_until(Duration::from_secs(5), || group_members(pid).is_empty()));
}

#[test]
fn bounded_output_keeps_everything_under_the_limit() {
    let mut out = BoundedOutput::new(100);
    out.push(b"hello ");
    out.push("wörld\n".as_bytes());
    assert_eq!(out.total_bytes(), 13);
    assert_eq!(out.finish(), "hello wörld\n");

    // A character split between the head and the tail is rejoined when nothing was cut.
    let mut out = BoundedOutput::new(4);
    out.push("a€".as_bytes());
    assert_eq!(out.finish(), "a€");
}

#[test]
fn bounded_output_keeps_head_and_tail_and_marks_the_cut() {
    let mut out = BoundedOutput::new(10);
    for _ in 0..3 {
        out.push(b"0123456789");
    }
    assert_eq!(out.total_bytes(), 30);
    assert_eq!(out.finish(), "01234\n[... 20 bytes cut ...]\n56789");

    // One big push gives the same result as many small ones.
    let mut one = BoundedOutput::new(10);
    one.push(b"012345678901234567890123456789");
    assert_eq!(one.finish(), out.finish());
    let mut bytes = BoundedOutput::new(10);
    for b in b"012345678901234567890123456789" {
        bytes.push(&[*b]);
    }
    assert_eq!(bytes.finish(), out.finish());
}

#[test]
fn bounded_output_never_shows_half_a_character_at_the_cut() {
    // 3-byte characters: a limit of 8 keeps 4 head bytes (one € and one byte of the next)
    // and 4 tail bytes (one byte of a € and one whole €).
    let mut out = BoundedOutput::new(8);
    out.push("€€€€€€".as_bytes());
    let text = out.finish();
    assert!(!text.contains('\u{FFFD}'), "{text:?}");
    assert_eq!(text, "€\n[... 12 bytes cut ...]\n€");
    assert_eq!(out.total_bytes(), 18);

    // Invalid bytes from the step itself are still shown as replacement characters.
    let mut out = BoundedOutput::new(100);
    out.push(&[b'a', 0xFF, b'b']);
    assert_eq!(out.finish(), "a\u{FFFD}b");
}

#[test]
fn bounded_output_with_no_room_only_counts() {
    let mut out = BoundedOutput::new(0);
    out.push(b"abc");
    assert_eq!(out.total_bytes(), 3);
    assert_eq!(out.finish(), "\n[... 3 bytes cut ...]\n");
}

#[test]
fn a_step_flooding_its_output_still_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Step::new("bash", "yes", dir.path()).command();
    cmd.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let mut bytes = 0usize;
    let outcome = run_step(
        &cmd,
        &mut |_| Ok(()),
        &mut |chunk| {
            let (Chunk::Stdout(b) | Chunk::Stderr(b)) = chunk;
            bytes += b.len();
        },
        &mut || false,
    )
    .unwrap();
    assert!(outcome.timed_out);
    assert!(bytes > 0);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_step_held_at_its_gate_runs_none_of_its_code_until_it_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    for shell in ["bash", "sh"] {
        let step = Step::new(
            shell,
            "touch ran\necho \"$0\"\ngrep Cpus_allowed_list /proc/self/status",
            dir.path(),
        );
        let gated = spawn_gated(step.gated()).unwrap();
        let pid = gated.spawned().pid;
        if cpus_allowed("self").contains(['-', ',']) {
            // Held off the spawning thread's CPU while the commit runs there.
            assert_ne!(
                cpus_allowed(&pid.to_string()),
                cpus_allowed("self"),
                "{shell}"
            );
        }
        assert_eq!(
            process_start_time(pid),
            Some(gated.spawned().start_time),
            "{shell}"
        );
        // Its interpreter started and waits at the gate (the shell's start-up is ~1 ms).
        std::thread::sleep(Duration::from_millis(150));
        assert!(pid_alive(pid), "{shell}");
        assert!(!ran.exists(), "{shell}: code ran before the gate opened");
        let (outcome, out) = open_gate(gated);
        assert_eq!(outcome.exit_code, Some(0), "{shell}");
        assert!(ran.exists(), "{shell}");
        // The code runs with the CPUs it inherited.
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("sop-step\nCpus_allowed_list:\t{}\n", cpus_allowed("self")),
            "{shell}"
        );
        std::fs::remove_file(&ran).unwrap();
    }
}

/// Copies an executable with `cp`, not from this multi-threaded process: a child forked by
/// another test meanwhile would inherit the copy's open write handle, and running the copy
/// would then fail with "text file busy".
fn copy_program(from: &str, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp {from} {}", to.display());
}

/// Opens the gate of a held step and runs it to its end: its outcome and its stdout.
fn open_gate(gated: sop_runtime::process::Gated) -> (Outcome, Vec<u8>) {
    let mut out = Vec::new();
    let outcome = gated
        .run(
            &mut || {},
            &mut |c| {
                if let Chunk::Stdout(b) = c {
                    out.extend_from_slice(b);
                }
            },
            &mut || false,
        )
        .unwrap();
    (outcome, out)
}

/// `Cpus_allowed_list` of a process (`self` or a pid), from `/proc`.
fn cpus_allowed(pid: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_gate_dropped_unopened_ends_its_step_without_running_anything() {
    let dir = tempfile::tempdir().unwrap();
    let step = Step::new("bash", "touch ran", dir.path());
    let gated = spawn_gated(step.gated()).unwrap();
    let pid = gated.spawned().pid;
    // At its gate by now (the shell's start-up is ~1 ms).
    std::thread::sleep(Duration::from_millis(100));
    drop(gated);
    assert!(!pid_alive(pid), "reaped");
    std::thread::sleep(Duration::from_millis(50));
    assert!(!dir.path().join("ran").exists());
}

#[test]
fn a_gate_closed_by_a_dying_runner_ends_the_shell_before_its_code() {
    // sop killed while a step waits at its gate: the pipe's other end closes, the shell reads
    // end-of-file and exits 125 without running the code.
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "sh"] {
        let mut child = std::process::Command::new(shell)
            .args(gated_script_args(shell, "touch ran").unwrap())
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdin.take());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(125), "{shell}");
        assert!(!dir.path().join("ran").exists(), "{shell}");
    }
}

#[test]
fn behind_the_gate_a_step_reads_dev_null_and_its_errors_keep_their_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let step = Step::new(
        "bash",
        "if read -r line; then echo \"read: $line\"; else echo eof; fi\nno-such-command-xyz",
        dir.path(),
    );
    let mut out = Vec::new();
    let mut err = Vec::new();
    let outcome = spawn_gated(step.gated())
        .unwrap()
        .run(
            &mut || {},
            &mut |c| match c {
                Chunk::Stdout(b) => out.extend_from_slice(b),
                Chunk::Stderr(b) => err.extend_from_slice(b),
            },
            &mut || false,
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out), "eof\n");
    assert_eq!(outcome.exit_code, Some(127));
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains("line 2: no-such-command-xyz"), "{err}");
}

#[test]
fn a_held_step_stays_current_only_while_its_directory_program_and_process_do() {
    use nix::sys::signal::{kill, Signal};
    // A step started behind a running one may be held while that one replaces its working
    // directory or its interpreter, or kills it: it is then not what a spawn now would start.
    let dir = tempfile::tempdir().unwrap();
    let (work, bin) = (dir.path().join("work"), dir.path().join("bin"));
    std::fs::create_dir(&bin).unwrap();
    let bash = bin.join("bash");
    copy_program("/bin/bash", &bash);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let held = || {
        std::fs::create_dir_all(&work).unwrap();
        let step = Step::new("bash", "true", &work).env("PATH", &path);
        spawn_gated(step.gated()).unwrap()
    };
    let fresh = held();
    assert!(fresh.is_current(), "just started");
    assert!(fresh.is_current(), "asking again changes nothing");
    drop(fresh);

    let moved = held();
    std::fs::remove_dir_all(&work).unwrap();
    std::fs::create_dir(&work).unwrap();
    assert!(!moved.is_current(), "its working directory was replaced");
    drop(moved);

    let upgraded = held();
    copy_program("/bin/bash", &bin.join("bash.new"));
    std::fs::rename(bin.join("bash.new"), &bash).unwrap();
    assert!(!upgraded.is_current(), "its interpreter was replaced");
    drop(upgraded);

    // A library it mapped replaced (an upgrade): one of bash's own (`ldd`), found through
    // `LD_LIBRARY_PATH` in a directory of ours. Skipped where bash links no such library.
    let ldd = std::process::Command::new("ldd").arg("/bin/bash").output();
    let ldd = ldd
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let library = ldd.lines().find_map(|l| {
        let (soname, rest) = l.trim().split_once(" => ")?;
        let file = rest.split_whitespace().next()?;
        (!soname.starts_with("libc.")).then(|| (soname.to_string(), PathBuf::from(file)))
    });
    if let Some((soname, library)) = library {
        let libs = dir.path().join("lib");
        std::fs::create_dir(&libs).unwrap();
        let copy = libs.join(&soname);
        std::fs::copy(&library, &copy).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let step = Step::new("bash", "true", &work)
            .env("PATH", &path)
            .env("LD_LIBRARY_PATH", &libs.display().to_string());
        let relinked = spawn_gated(step.gated()).unwrap();
        // Its libraries are loaded once the shell has started.
        let maps = format!("/proc/{}/maps", relinked.spawned().pid);
        let since = Instant::now();
        while !std::fs::read_to_string(&maps)
            .unwrap()
            .contains(&copy.display().to_string())
        {
            assert!(
                since.elapsed() < Duration::from_secs(5),
                "{soname} not ours"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(relinked.is_current(), "with its own copy of {soname}");
        std::fs::copy(&library, libs.join("new")).unwrap();
        std::fs::rename(libs.join("new"), &copy).unwrap();
        assert!(!relinked.is_current(), "a library it mapped was replaced");
    }

    // Killed: not current as soon as the signal is sent, though the process takes it only
    // when it next runs. Shown with one that cannot run (stopped) until it is let go.
    let killed = held();
    let pid = nix::unistd::Pid::from_raw(killed.spawned().pid as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    let stat = format!("/proc/{pid}/stat");
    let since = Instant::now();
    while !std::fs::read_to_string(&stat)
        .unwrap()
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
    {
        assert!(since.elapsed() < Duration::from_secs(5), "never stopped");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(killed.is_current(), "stopped, nothing pending");
    kill(pid, Signal::SIGTERM).unwrap();
    assert!(!killed.is_current(), "a signal it has not taken yet");
    kill(pid, Signal::SIGCONT).unwrap();
    let since = Instant::now();
    while std::path::Path::new(&stat).exists() && killed.is_current() {
        assert!(since.elapsed() < Duration::from_secs(5), "still current");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!killed.is_current(), "gone");
}

#[test]
fn a_gate_calls_on_open_while_the_step_code_runs() {
    let dir = tempfile::tempdir().unwrap();
    let step = Step::new("bash", "touch opened\nsleep 0.3", dir.path());
    let gated = spawn_gated(step.gated()).unwrap();
    let mut seen_running = 0;
    let outcome = gated
        .run(
            &mut || {
                // The code runs meanwhile: its first line shows up while this waits.
                let since = Instant::now();
                while !dir.path().join("opened").exists() {
                    assert!(
                        since.elapsed() < Duration::from_secs(5),
                        "the code never ran"
                    );
                    std::thread::sleep(Duration::from_millis(2));
                }
                seen_running += 1;
            },
            &mut |_| {},
            &mut || false,
        )
        .unwrap();
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(seen_running, 1, "called once");
}

#[test]
fn a_held_bash_counts_its_seconds_from_the_gate() {
    // `$SECONDS` counts from a shell's start; a held shell may wait long before its code
    // runs. Held 2.1 s, it would say 2 or more; counted from the gate, 0 (1 if a second
    // boundary falls between the gate and the `echo`).
    let dir = tempfile::tempdir().unwrap();
    let code = "echo \"${SECONDS-unset}\"";
    let held: Vec<_> = ["bash", "sh"]
        .map(|shell| {
            (
                shell,
                spawn_gated(Step::new(shell, code, dir.path()).gated()).unwrap(),
            )
        })
        .into();
    std::thread::sleep(Duration::from_millis(2100));
    for (shell, gated) in held {
        let (outcome, out) = open_gate(gated);
        assert_eq!(outcome.exit_code, Some(0), "{shell}");
        let out = String::from_utf8_lossy(&out).trim().to_string();
        // dash has no `$SECONDS` (the gate leaves it unset); bash has, also as `sh`.
        let unset_allowed = shell == "sh";
        assert!(
            matches!(out.as_str(), "0" | "1") || (unset_allowed && out == "unset"),
            "{shell}: {out}"
        );
    }
}

#[test]
fn only_shells_are_held_at_a_gate() {
    assert!(gated_script_args("python3", "print(1)").is_none());
    assert!(gated_script_args("node", "1").is_none());
    assert!(gated_script_args("zsh", "true").is_none());
}

#[test]
fn a_step_whose_environment_acts_before_its_code_is_not_held() {
    // `BASH_ENV` is sourced, `SHELLOPTS=xtrace` traces, before the gate: such a step starts
    // after its commit instead.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("env.sh"), "touch sourced\n").unwrap();
    let env_file = dir.path().join("env.sh").display().to_string();
    for (name, value) in [
        ("BASH_ENV", env_file.as_str()),
        ("SHELLOPTS", "xtrace"),
        // Start-up state the gate resets (see the next test).
        ("SECONDS", "100"),
    ] {
        let step = Step::new("bash", "true", dir.path()).env(name, value);
        let refused = spawn_gated(step.gated()).err().expect("refused");
        assert!(refused.to_string().contains(name), "{refused}");
    }
    assert!(!dir.path().join("sourced").exists());
}
