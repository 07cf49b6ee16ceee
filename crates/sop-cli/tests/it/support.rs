//! A small builder for driving the real `sop` binary in a temporary home.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A word no other test's processes carry (`<what>-<this home's random name>`), for
    /// finding this test's step processes by their command line while tests run in
    /// parallel.
    pub fn marker(&self, what: &str) -> String {
        let name = self
            .path()
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let token: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
        format!("{what}-{token}")
    }

    /// Writes `sops/<name>/SOP.toml` and `SOP.md`.
    pub fn sop(&self, name: &str, toml: &str, md: &str) -> &Self {
        let dir = self.path().join("sops").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("SOP.toml"), toml).unwrap();
        std::fs::write(dir.join("SOP.md"), md).unwrap();
        self
    }

    /// A SOP with a default manifest (automatic mode unless `extra` says otherwise).
    pub fn simple(&self, name: &str, extra: &str, md: &str) -> &Self {
        let toml = format!("[sop]\nname = \"{name}\"\ndescription = \"test {name}\"\n{extra}\n");
        let toml = if extra.contains("execution_mode") {
            toml
        } else {
            toml.replace("[sop]\n", "[sop]\nexecution_mode = \"automatic\"\n")
        };
        self.sop(name, &toml, md)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sop"));
        c.arg("--home")
            .arg(self.path())
            .env_remove("SOP_HOME")
            .env_remove("SOP_URL")
            .env_remove("SOP_TOKEN")
            .stdin(Stdio::null());
        c
    }

    /// Runs `sop <args>` to completion.
    pub fn run(&self, args: &[&str]) -> Out {
        let out = self.cmd().args(args).output().expect("run sop");
        Out::from(out)
    }

    /// Starts `sop <args>` in the background.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sop")
    }

    /// `sop status <target> --json`.
    pub fn status_json(&self, target: &str) -> serde_json::Value {
        let out = self.run(&["status", target, "--json"]);
        assert_eq!(out.code, 0, "status failed: {}", out.stderr);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("bad json ({e}): {}", out.stdout))
    }

    /// Waits until `sop status <target> --json` satisfies `pred` (up to 20 s).
    pub fn wait_status(
        &self,
        target: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        wait_for(Duration::from_secs(20), || {
            let out = self.run(&["status", target, "--json"]);
            if out.code != 0 {
                return None;
            }
            let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
            pred(&v).then_some(v)
        })
        .unwrap_or_else(|| {
            panic!(
                "status of {target} never matched; last: {}",
                self.run(&["status", target, "--json"]).stdout
            )
        })
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    /// The audit files of a SOP.
    pub fn audit_files(&self, sop: &str) -> Vec<PathBuf> {
        let dir = self.path().join("logs/sop").join(sop);
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// The two columns of `sql`'s rows, read straight from the store (read-only).
    pub fn store_rows<A: rusqlite::types::FromSql, B: rusqlite::types::FromSql>(
        &self,
        sql: &str,
    ) -> Vec<(A, B)> {
        let db = rusqlite::Connection::open_with_flags(
            self.file("state/sop.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the store");
        let mut stmt = db.prepare(sql).expect("query");
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows");
        rows
    }

    /// Every step process recorded as spawned, in order: (run id, gate, pid), read straight
    /// from the store's events.
    pub fn spawned_pids(&self) -> Vec<(String, String, u32)> {
        self.store_rows::<String, String>("SELECT run_id, body FROM events ORDER BY seq")
            .into_iter()
            .filter_map(|(run, body)| {
                let v: serde_json::Value = serde_json::from_str(&body).expect("event json");
                (v["event"] == "step_spawned").then(|| {
                    let gate = v["gate"].as_str().expect("gate").to_string();
                    let pid = u32::try_from(v["pid"].as_u64().expect("pid")).expect("pid");
                    (run, gate, pid)
                })
            })
            .collect()
    }

    /// The audit file of run `id` of a SOP (`<created>-<run id>.json`).
    pub fn audit_file(&self, sop: &str, id: &str) -> PathBuf {
        self.audit_files(sop)
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with(&format!("-{id}.json")))
            .unwrap_or_else(|| panic!("no audit file for {id}"))
    }
}

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Out {
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn stdout_has(&self, s: &str) -> &Self {
        assert!(
            self.stdout.contains(s),
            "stdout lacks {s:?}:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn stderr_has(&self, s: &str) -> &Self {
        assert!(
            self.stderr.contains(s),
            "stderr lacks {s:?}:\n{}\nstdout:\n{}",
            self.stderr,
            self.stdout
        );
        self
    }
}

/// Polls `f` until it returns `Some` or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for a child with a limit; kills it if it overruns.
pub fn wait_child(mut child: Child, limit: Duration) -> Out {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return Out::from(child.wait_with_output().expect("output"));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = Out::from(child.wait_with_output().expect("output"));
            panic!(
                "sop did not finish in {limit:?}\nstdout:\n{}\nstderr:\n{}",
                out.stdout, out.stderr
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The only run id of a SOP (from `sop runs --json`).
pub fn only_run(home: &Home, sop: &str) -> String {
    let out = home.run(&["runs", "--sop", sop, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("runs json");
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 1, "expected one run of {sop}: {v}");
    arr[0]["id"].as_str().unwrap().to_string()
}

/// Waits until a run of `sop` exists and returns its id.
pub fn wait_run(home: &Home, sop: &str) -> String {
    wait_for(Duration::from_secs(20), || {
        let out = home.run(&["runs", "--sop", sop, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        v.as_array()?.first()?["id"].as_str().map(String::from)
    })
    .unwrap_or_else(|| {
        let out = home.run(&["runs", "--json"]);
        panic!(
            "no run of {sop} appeared; runs: {} {}",
            out.stdout, out.stderr
        )
    })
}
