//! `sop run` and friends: steps, conditions, variables, output, audit files.

use std::time::Duration;

use crate::support::{only_run, wait_child, Home};

const STEPS: &str = r#"## Steps

1. **Write** — set a variable for later steps
   ```bash
   echo "writing"
   echo "artifact=dist/app.tar.gz" >> "$SOP_OUTPUT"
   ```

2. **Only with artifact** [if: artifact == "dist/app.tar.gz"]
   ```bash
   echo "got $artifact"
   ```

3. **Skipped** [if: !artifact]
   ```bash
   echo "never"
   ```
"#;

#[test]
fn init_then_run_the_example_succeeds_and_writes_its_audit_file() {
    let home = Home::new();
    home.run(&["init"]).ok();
    let out = home.run(&["run", "hello", "--var", "who=tester"]);
    out.ok().stdout_has("hello, tester");
    out.stderr_has("run ").stderr_has("success");
    let files = home.audit_files("hello");
    assert_eq!(files.len(), 1, "one audit file: {files:?}");
    let audit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(audit["status"], "success");
    assert_eq!(audit["vars"]["who"], "tester");
    let id = audit["run_id"].as_str().unwrap();
    assert_eq!(
        home.status_json(id),
        audit,
        "status --json is the audit document"
    );
}

#[test]
fn outputs_conditions_and_skips_are_recorded() {
    let home = Home::new();
    home.simple("flow", "", STEPS);
    let out = home.run(&["run", "flow"]);
    out.ok().stdout_has("got dist/app.tar.gz");
    assert!(!out.stdout.contains("never"));
    let id = only_run(&home, "flow");
    let v = home.status_json(&id);
    let statuses: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["success", "success", "skipped"]);
    assert_eq!(v["steps"][2]["reason"], "condition `!artifact` is false");
    assert_eq!(v["vars"]["artifact"], "dist/app.tar.gz");
    assert_eq!(v["metrics"]["steps_completed"], 2);
    assert_eq!(v["metrics"]["steps_skipped"], 1);
}

#[test]
fn each_step_is_recorded_with_the_pid_of_the_process_that_ran_it() {
    // A shell step after another is spawned ahead of the commit that starts it (while the
    // step before it runs), held at a gate (`process::Gated`): the pid committed must be the
    // process that then ran its code, as for steps started after their commit (python3, the
    // first step).
    let home = Home::new();
    let shell = |n: u32, lang: &str| {
        format!(
            "{n}. **Step {n}**\n   ```{lang}\n   echo $$ > pid-{n}\n   tr '\\0' ' ' < /proc/$$/cmdline > cmd-{n}\n   ```\n\n"
        )
    };
    let python = "import os; open('pid-3', 'w').write(str(os.getpid())); open('cmd-3', 'w').write(open('/proc/self/cmdline').read())";
    let md = format!(
        "## Steps\n\n{}{}3. **Step 3**\n   ```python3\n   {python}\n   ```\n\n{}",
        shell(1, "bash"),
        shell(2, "sh"),
        shell(4, "bash"),
    );
    home.simple("pids", "", &md);
    home.run(&["run", "pids"]).ok();
    let recorded = home.spawned_pids();
    assert_eq!(recorded.len(), 4, "{recorded:?}");
    for (n, (_, gate, pid)) in (1..=4).zip(&recorded) {
        assert_eq!(gate, &format!("step {n}"));
        let file = |what: &str| {
            std::fs::read_to_string(home.file(&format!("sops/pids/{what}-{n}"))).unwrap()
        };
        assert_eq!(file("pid").trim(), pid.to_string(), "step {n}");
        // Held (its command line holds the gate): the shells the previous exit started.
        assert_eq!(
            file("cmd").contains("read -r _"),
            n == 2 || n == 4,
            "step {n}: {}",
            file("cmd")
        );
    }
}

/// Shell code that waits (up to 5 s) for the held shell of the step whose code holds
/// `marker` (from `Home::marker`: no other test's) and puts its pid in `$held` (empty if
/// none came).
fn find_held(marker: &str) -> String {
    format!(
        "held=\n   for i in $(seq 250); do\n     f=$(grep -las '{}' /proc/[0-9]*/cmdline | head -n 1 || true)\n     if [ -n \"$f\" ]; then held=$(basename \"$(dirname \"$f\")\"); break; fi\n     sleep 0.02\n   done",
        pattern(marker)
    )
}

/// A `grep` pattern matching `marker` but not itself: the first `-` as `[-]`, so the code
/// that searches does not find its own command line.
fn pattern(marker: &str) -> String {
    marker.replacen('-', "[-]", 1)
}

#[test]
fn the_step_after_a_running_one_starts_while_it_runs_and_runs_there() {
    // While a step's last script runs, the next step's shell is started and held
    // (`Driver::start_following`); that very shell runs the next step, as if just started.
    let home = Home::new();
    let two = home.marker("two");
    let md = format!(
        r#"## Steps

1. **Look for the next step's shell**
   ```bash
   test -z "$(grep -las '{}' /proc/[0-9]*/cmdline)" && echo "none during the first script"
   ```
   ```bash
   {}
   echo "$held" > held-pid
   sleep 2.1
   ```

2. **Run in the shell held for it**
   ```bash
   echo "{two} $$ $SECONDS" > ran
   ```
"#,
        pattern(&two),
        find_held(&two)
    );
    home.simple("early", "", &md);
    home.run(&["run", "early"])
        .ok()
        .stdout_has("none during the first script");
    let read = |f: &str| std::fs::read_to_string(home.file(&format!("sops/early/{f}"))).unwrap();
    let held = read("held-pid").trim().to_string();
    assert!(!held.is_empty(), "no held shell seen during step 1");
    // Its `$SECONDS` counts from the gate's opening (0, or 1 across a second boundary), not
    // from its start 2.1 s earlier.
    let ran = read("ran");
    let fields: Vec<&str> = ran.split_whitespace().collect();
    assert_eq!(fields[..2], [two.as_str(), held.as_str()], "{ran}");
    assert!(matches!(fields[2], "0" | "1"), "{ran}");
    // One pid per script: two for step 1, then step 2's.
    let recorded: Vec<(String, u32)> = home
        .spawned_pids()
        .into_iter()
        .map(|(_, gate, pid)| (gate, pid))
        .collect();
    let gates: Vec<&str> = recorded.iter().map(|(g, _)| g.as_str()).collect();
    assert_eq!(gates, ["step 1", "step 1", "step 2"]);
    assert_eq!(recorded[2].1.to_string(), held);
}

#[test]
fn a_step_started_while_the_one_before_runs_sees_what_that_one_did() {
    // What the running step does reaches the next one as if it had started afterwards: a
    // replaced working directory, its held shell killed.
    let home = Home::new();
    let three = home.marker("three");
    let md = format!(
        r#"## Steps

1. **Replace the directory the steps work in** [workdir: work]
   ```bash
   cd .. && rm -rf work && mkdir work && echo fresh > work/marker
   ```

2. **Read it, and kill the next step's held shell** [workdir: work]
   ```bash
   cat marker
   {}
   kill -KILL "$held"
   echo "killed $held"
   ```

3. **Run anyway** [workdir: work]
   ```bash
   echo "{three} ran in $$"
   ```
"#,
        find_held(&three)
    );
    home.simple("behind", "", &md);
    std::fs::create_dir(home.file("sops/behind/work")).unwrap();
    let out = home.run(&["run", "behind"]);
    out.ok()
        .stdout_has("fresh")
        .stdout_has(&format!("{three} ran in"));
    let pid_after = |word: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.split_once(word).map(|(_, p)| p.trim().to_string()))
            .unwrap_or_else(|| panic!("no `{word}` in {}", out.stdout))
    };
    let (killed, ran) = (pid_after("killed "), pid_after("ran in "));
    assert!(!killed.is_empty());
    assert_ne!(killed, ran, "the killed shell cannot have run step 3");
}

#[test]
fn a_failing_step_lets_go_of_the_next_steps_held_shell_before_the_rollback() {
    let home = Home::new();
    let two = home.marker("two");
    let md = format!(
        r#"## Steps

1. **Fail once the next step's shell is held**
   ```bash
   {}
   echo "$held" > held-pid
   exit 1
   ```

2. **Never**
   ```bash
   echo "{two} ran"
   ```

## Rollback

1. **Look for it**
   ```bash
   if kill -0 "$(cat held-pid)" 2>/dev/null; then echo "held shell still there"; else echo "held shell gone"; fi
   ```
"#,
        find_held(&two)
    );
    home.simple("letgo", "", &md);
    let out = home.run(&["run", "letgo"]);
    out.code(1).stdout_has("held shell gone");
    assert!(
        !out.stdout.contains(&format!("{two} ran")),
        "{}",
        out.stdout
    );
    let held = std::fs::read_to_string(home.file("sops/letgo/held-pid")).unwrap();
    assert!(!held.trim().is_empty(), "no held shell seen during step 1");
}

#[test]
fn failing_step_fails_the_run_with_exit_1_and_runs_rollback() {
    let home = Home::new();
    home.simple(
        "boom",
        "",
        "## Steps\n\n1. **Ok**\n   ```bash\n   echo one\n   ```\n\n2. **Fail**\n   ```bash\n   echo failing; exit 3\n   ```\n\n3. **Never**\n   ```bash\n   echo never\n   ```\n\n## Rollback\n\n1. **Undo**\n   ```bash\n   echo undoing\n   ```\n",
    );
    let out = home.run(&["run", "boom"]);
    out.code(1).stdout_has("undoing").stderr_has("failure");
    assert!(!out.stdout.contains("never"));
    let v = home.status_json(&only_run(&home, "boom"));
    assert_eq!(v["status"], "failure");
    assert_eq!(v["steps"][1]["exit_code"], 3);
    assert_eq!(v["rollback"][0]["status"], "success");
}

#[test]
fn retry_runs_the_step_again_and_counts_attempts() {
    let home = Home::new();
    home.simple(
        "flaky",
        "",
        "## Steps\n\n1. **Flaky** [retry: 2, retry_delay: 0s]\n   ```bash\n   n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count\n   [ \"$n\" -ge 1 ]\n   ```\n",
    );
    home.run(&["run", "flaky"]).ok();
    let v = home.status_json(&only_run(&home, "flaky"));
    assert_eq!(v["steps"][0]["attempts"], 2);
    assert_eq!(v["steps"][0]["status"], "success");
}

#[test]
fn step_timeout_kills_the_step() {
    let home = Home::new();
    std::fs::write(home.file("sop.toml"), "kill_grace_secs = 1\n").unwrap();
    home.simple(
        "slow",
        "",
        "## Steps\n\n1. **Slow** [timeout: 1s]\n   ```bash\n   sleep 30\n   ```\n",
    );
    let child = home.spawn(&["run", "slow"]);
    let out = wait_child(child, Duration::from_secs(15));
    out.code(1);
    let v = home.status_json(&only_run(&home, "slow"));
    assert_eq!(v["steps"][0]["status"], "timed_out");
}

#[test]
fn injection_through_vars_never_runs_and_the_step_sees_the_exact_bytes() {
    let home = Home::new();
    home.simple(
        "echo",
        "",
        "## Steps\n\n1. **Echo**\n   ```bash\n   printf '%s' \"$payload\" > seen.txt\n   printf '%s' \"$SOP_VAR_PAYLOAD\" > seen2.txt\n   ```\n",
    );
    let payloads = [
        "$(touch pwned)",
        "; touch pwned",
        "`touch pwned`",
        "a\ntouch pwned\n",
        "\"'; touch pwned; '\"",
        "$((1+1)) ${HOME} \\",
    ];
    for p in payloads {
        home.run(&["run", "echo", "--var", &format!("payload={p}")])
            .ok();
        let dir = home.file("sops/echo");
        assert_eq!(std::fs::read_to_string(dir.join("seen.txt")).unwrap(), p);
        assert_eq!(std::fs::read_to_string(dir.join("seen2.txt")).unwrap(), p);
        assert!(
            !dir.join("pwned").exists() && !home.file("pwned").exists(),
            "payload {p:?} ran"
        );
    }
}

#[test]
fn declared_vars_are_checked_before_the_run_exists() {
    let home = Home::new();
    home.simple(
        "deploy",
        "[vars]\nversion = { required = true, pattern = '^\\d+\\.\\d+\\.\\d+$' }\n",
        "## Steps\n\n1. **Go**\n   ```bash\n   echo $version\n   ```\n",
    );
    home.run(&["run", "deploy"]).code(2).stderr_has("version");
    home.run(&["run", "deploy", "--var", "version=latest"])
        .code(2)
        .stderr_has("version");
    home.run(&[
        "run",
        "deploy",
        "--var",
        "version=1.2.3",
        "--var",
        "verison=1",
    ])
    .code(2)
    .stderr_has("verison");
    home.run(&[
        "run",
        "deploy",
        "--var",
        "version=1.2.3",
        "--var",
        "PATH=/tmp",
    ])
    .code(2)
    .stderr_has("PATH");
    let runs = home.run(&["runs", "--json"]);
    assert_eq!(runs.stdout.trim(), "[]", "no run was created");
    home.run(&["run", "deploy", "--var", "version=1.2.3"])
        .ok()
        .stdout_has("1.2.3");
}

#[test]
fn secret_vars_are_redacted_in_output_audit_and_status() {
    let home = Home::new();
    home.simple(
        "secret",
        "[vars]\ntoken = { secret = true }\n",
        "## Steps\n\n1. **Leak**\n   ```bash\n   echo \"token is $token\"\n   printf '%s' \"$token\" | base64\n   ```\n",
    );
    let out = home.run(&["run", "secret", "--var", "token=hunter2-very-secret"]);
    out.ok();
    assert!(
        !out.stdout.contains("hunter2"),
        "live output leaked: {}",
        out.stdout
    );
    assert!(out.stdout.contains("token is ***"));
    let id = only_run(&home, "secret");
    let status = home.run(&["status", &id, "--json"]).stdout;
    assert!(
        !status.contains("hunter2") && !status.contains("aHVudGVyMi12ZXJ5LXNlY3JldA"),
        "{status}"
    );
    let audit = std::fs::read_to_string(&home.audit_files("secret")[0]).unwrap();
    assert!(
        !audit.contains("hunter2") && audit.contains("\"token\": \"***\""),
        "{audit}"
    );
    let logs = home.run(&["logs", &id]).stdout;
    assert!(!logs.contains("hunter2"), "{logs}");
}

#[test]
fn cooldown_refuses_with_remaining_time_and_force_overrides() {
    let home = Home::new();
    home.simple(
        "cool",
        "cooldown_secs = 3600",
        "## Steps\n\n1. **Go**\n   ```bash\n   true\n   ```\n",
    );
    home.run(&["run", "cool"]).ok();
    let first = only_run(&home, "cool");
    let out = home.run(&["run", "cool"]);
    out.code(1)
        .stderr_has("in cooldown")
        .stderr_has(&first)
        .stderr_has("1h 0m remain");
    home.run(&["run", "cool", "--force"])
        .ok()
        .stderr_has("cooldown overridden");
    let runs: serde_json::Value =
        serde_json::from_str(&home.run(&["runs", "--sop", "cool", "--json"]).stdout).unwrap();
    let newest = runs[0]["id"].as_str().unwrap();
    assert_eq!(home.status_json(newest)["forced"], true);
}

#[test]
fn list_show_runs_and_logs_read_commands() {
    let home = Home::new();
    home.simple("flow", "priority = \"high\"", STEPS);
    let list: serde_json::Value =
        serde_json::from_str(&home.run(&["list", "--json"]).ok().stdout).unwrap();
    assert_eq!(list[0]["name"], "flow");
    assert_eq!(list[0]["priority"], "high");
    home.run(&["show", "flow"])
        .ok()
        .stdout_has("if artifact == \"dist/app.tar.gz\"");
    home.run(&["run", "flow"]).ok();
    let id = only_run(&home, "flow");
    home.run(&["runs", "--status", "success"])
        .ok()
        .stdout_has(&id);
    home.run(&["runs", "--status", "bogus"])
        .code(2)
        .stderr_has("expected one of");
    home.run(&["logs", &id])
        .ok()
        .stdout_has("==> step 1")
        .stdout_has("writing");
    home.run(&["logs", &id, "-f"])
        .ok()
        .stdout_has("got dist/app.tar.gz");
    home.run(&["show", "nope"])
        .code(2)
        .stderr_has("no SOP named `nope`");
}

#[test]
fn detach_prints_the_run_id_and_the_run_finishes_in_the_background() {
    let home = Home::new();
    home.simple(
        "bg",
        "",
        "## Steps\n\n1. **Go**\n   ```bash\n   echo background\n   ```\n",
    );
    let out = home.run(&["run", "bg", "--detach"]);
    out.ok();
    let id = out.stdout.trim().to_string();
    assert_eq!(id.len(), 12, "{id}");
    let v = home.wait_status(&id, |v| v["status"] == "success");
    assert!(v["steps"][0]["output"]
        .as_str()
        .unwrap()
        .contains("background"));
}

#[test]
fn steps_get_the_runners_shell_or_else_its_users_login_shell() {
    let home = Home::new();
    home.simple(
        "shell",
        "",
        "## Steps\n\n1. **Show**\n   ```bash\n   echo \"shell=$(printenv SHELL || echo unset)\"\n   ```\n",
    );
    let set = home
        .cmd()
        .env("SHELL", "/opt/sop-test/shell")
        .args(["run", "shell"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&set.stdout);
    assert!(out.contains("shell=/opt/sop-test/shell\n"), "{out}");

    // Without one, the password database's: what a login (or systemd's `User=`) sets.
    let passwd = std::process::Command::new("sh")
        .args(["-c", "getent passwd \"$(id -u)\" | cut -d: -f7"])
        .output()
        .unwrap();
    let login = String::from_utf8_lossy(&passwd.stdout).trim().to_string();
    assert!(
        !login.is_empty(),
        "the test needs a passwd entry for its user"
    );
    let unset = home
        .cmd()
        .env_remove("SHELL")
        .args(["run", "shell"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&unset.stdout);
    assert!(out.contains(&format!("shell={login}\n")), "{out}");
}
