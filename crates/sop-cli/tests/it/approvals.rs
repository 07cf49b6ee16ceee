//! Approvals, rejections, confirmations and cancels from other processes.

use std::time::Duration;

use crate::support::{wait_child, wait_run, Home};

const GATED: &str = r#"## Steps

1. **Prepare**
   ```bash
   echo prepared
   ```

2. **Build**
   ```bash
   echo built
   ```

3. **Deploy** [requires_approval: true]
   ```bash
   echo "deploying $version"
   ```

## Rollback

1. **Undo**
   ```bash
   echo undone > rolled-back
   ```
"#;

#[test]
fn approval_from_a_second_process_releases_the_waiting_run() {
    let home = Home::new();
    home.simple("deploy", "", GATED);
    let child = home.spawn(&["run", "deploy", "--var", "version=9"]);
    let id = wait_run(&home, "deploy");
    let v = home.wait_status(&id, |v| v["status"] == "waiting_approval");
    assert_eq!(v["waiting"]["gate"], "step 3");
    home.run(&["status", &id])
        .ok()
        .stdout_has("waiting at step 3")
        .stdout_has(&format!("sop approve|reject {id}"));
    home.run(&["approve", "deploy", "--comment", "lgtm"])
        .ok()
        .stderr_has("approved");
    let out = wait_child(child, Duration::from_secs(20));
    out.ok().stdout_has("deploying 9");
    let v = home.status_json(&id);
    assert_eq!(v["status"], "success");
    assert_eq!(v["approvals"][0]["decision"], "approved");
    assert_eq!(v["approvals"][0]["comment"], "lgtm");
    assert_eq!(v["approvals"][0]["channel"], "cli");
    assert!(v["approvals"][0]["by"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    home.run(&["approve", &id])
        .code(1)
        .stderr_has("not waiting");
}

#[test]
fn reject_after_step_two_runs_the_rollback() {
    let home = Home::new();
    home.simple("deploy", "", GATED);
    let child = home.spawn(&["run", "deploy"]);
    let id = wait_run(&home, "deploy");
    home.wait_status(&id, |v| v["status"] == "waiting_approval");
    home.run(&["reject", &id, "--reason", "not today"]).ok();
    let out = wait_child(child, Duration::from_secs(20));
    out.code(1);
    let v = home.status_json(&id);
    assert_eq!(v["status"], "rejected");
    assert_eq!(v["rollback"][0]["status"], "success");
    assert_eq!(v["approvals"][0]["comment"], "not today");
    assert!(home.file("sops/deploy/rolled-back").exists());
}

#[test]
fn approval_of_a_run_whose_waiting_process_died_is_picked_up() {
    let home = Home::new();
    home.simple("deploy", "", GATED);
    let mut child = home.spawn(&["run", "deploy"]);
    let id = wait_run(&home, "deploy");
    home.wait_status(&id, |v| v["status"] == "waiting_approval");
    child.kill().unwrap();
    child.wait().unwrap();
    home.run(&["approve", &id]).ok();
    let v = home.wait_status(&id, |v| v["status"] == "success");
    assert!(v["steps"][2]["output"]
        .as_str()
        .unwrap()
        .contains("deploying"));
}

#[test]
fn naming_a_sop_with_several_waiting_runs_lists_them() {
    let home = Home::new();
    home.simple(
        "gate",
        "execution_mode = \"supervised\"\nmax_concurrent = 5",
        "## Steps\n\n1. **Go**\n   ```bash\n   true\n   ```\n",
    );
    let a = home
        .run(&["run", "gate", "--detach"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let b = home
        .run(&["run", "gate", "--detach"])
        .ok()
        .stdout
        .trim()
        .to_string();
    home.wait_status(&a, |v| v["status"] == "waiting_approval");
    home.wait_status(&b, |v| v["status"] == "waiting_approval");
    let out = home.run(&["approve", "gate"]);
    out.code(2)
        .stderr_has("2 runs of `gate`")
        .stderr_has(&a)
        .stderr_has(&b);
    home.run(&["approve", &a]).ok();
    home.wait_status(&a, |v| v["status"] == "success");
    home.run(&["cancel", &b]).ok();
    assert_eq!(home.status_json(&b)["status"], "cancelled");
}

#[test]
fn manual_steps_wait_for_confirmation_and_take_variables() {
    let home = Home::new();
    home.simple(
        "manual",
        "",
        "## Steps\n\n1. **Check the dashboard** — look at it\n\n2. **Use it** [if: ticket]\n   ```bash\n   echo \"ticket $ticket\"\n   ```\n",
    );
    let child = home.spawn(&["run", "manual"]);
    let id = wait_run(&home, "manual");
    home.wait_status(&id, |v| v["status"] == "waiting_confirmation");
    home.run(&["approve", &id])
        .code(1)
        .stderr_has("not waiting for approval");
    home.run(&["confirm", "manual", "--set", "ticket=OPS-7"])
        .ok();
    wait_child(child, Duration::from_secs(20))
        .ok()
        .stdout_has("ticket OPS-7");
}

#[test]
fn self_approval_refused_when_disallowed() {
    let home = Home::new();
    home.simple(
        "strict",
        "execution_mode = \"supervised\"\nallow_self_approval = false",
        "## Steps\n\n1. **Go**\n   ```bash\n   true\n   ```\n",
    );
    let id = home
        .run(&["run", "strict", "--detach"])
        .ok()
        .stdout
        .trim()
        .to_string();
    home.wait_status(&id, |v| v["status"] == "waiting_approval");
    home.run(&["approve", &id])
        .code(1)
        .stderr_has("does not allow self-approval");
    home.run(&["reject", &id, "--reason", "changed my mind"])
        .ok();
    assert_eq!(
        home.wait_status(&id, |v| v["status"] != "waiting_approval")["status"],
        "rejected"
    );
}

#[test]
fn cancel_of_a_running_step_kills_its_whole_process_group() {
    let home = Home::new();
    std::fs::write(home.file("sop.toml"), "kill_grace_secs = 2\n").unwrap();
    let next = home.marker("next");
    home.simple("tree", "", &format!("## Steps\n\n1. **Tree**\n   ```bash\n   echo $$ > group.pid\n   sleep 100 &\n   sleep 100\n   ```\n\n2. **Next**\n   ```bash\n   echo {next} > ran-next\n   ```\n"));
    let child = home.spawn(&["run", "tree"]);
    let id = wait_run(&home, "tree");
    let pid_file = home.file("sops/tree/group.pid");
    let pgid: i32 = crate::support::wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .expect("the step wrote its pid");
    crate::support::wait_for(Duration::from_secs(20), || {
        (group_members(pgid).len() >= 2).then_some(())
    })
    .expect("sleeps started");
    // The next step's shell waits, held, while step 1 runs.
    let held = crate::support::wait_for(Duration::from_secs(20), || {
        processes_running(&next).first().copied()
    })
    .expect("the next step's shell is held");
    home.run(&["cancel", "tree"]).ok();
    let out = wait_child(child, Duration::from_secs(20));
    out.code(1);
    assert_eq!(home.status_json(&id)["status"], "cancelled");
    assert!(
        group_members(pgid).is_empty(),
        "processes of group {pgid} survived: {:?}",
        group_members(pgid)
    );
    assert!(group_members(held).is_empty(), "the held shell survived");
    assert!(
        !home.file("sops/tree/ran-next").exists(),
        "the next step ran"
    );
}

/// Live (non-zombie) processes whose command line contains `needle`.
pub fn processes_running(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(proc_id) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let live = std::fs::read_to_string(format!("/proc/{proc_id}/stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, a)| !a.starts_with('Z'))
        });
        let cmdline = std::fs::read(format!("/proc/{proc_id}/cmdline")).unwrap_or_default();
        if live && String::from_utf8_lossy(&cmdline).contains(needle) {
            out.push(proc_id);
        }
    }
    out
}

/// Live (non-zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(proc_id) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{proc_id}/stat")) else {
            continue;
        };
        let Some((_, after)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.first() != Some(&"Z")
            && fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid)
        {
            out.push(proc_id);
        }
    }
    out
}

#[test]
fn ctrl_c_in_a_foreground_run_cancels_it_and_runs_the_rollback() {
    let home = Home::new();
    home.simple(
        "stoppable",
        "",
        "## Steps\n\n1. **Wait**\n   ```bash\n   echo $$ > group.pid\n   sleep 100\n   ```\n\n## Rollback\n\n1. **Undo**\n   ```bash\n   echo undone > rolled-back\n   ```\n",
    );
    let child = home.spawn(&["run", "stoppable"]);
    let pid_file = home.file("sops/stoppable/group.pid");
    let pgid: i32 = crate::support::wait_for(Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .expect("the step wrote its pid");
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = wait_child(child, Duration::from_secs(20));
    out.code(1).stderr_has("Ctrl-C: cancelling");
    let id = crate::support::only_run(&home, "stoppable");
    let v = home.status_json(&id);
    assert_eq!(v["status"], "cancelled", "{v}");
    assert_eq!(v["rollback"][0]["status"], "success");
    assert!(
        group_members(pgid).is_empty(),
        "the step's processes were stopped"
    );
}
