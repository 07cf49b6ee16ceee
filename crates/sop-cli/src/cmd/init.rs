//! `sop init`: the home layout and one example SOP that runs out of the box.

use std::fs;
use std::path::Path;

use anyhow::Context as _;
use sop_runtime::Home;

use crate::{CmdResult, Exit};

const EXAMPLE_TOML: &str = r#"[sop]
name = "hello"
description = "Example: greet, record an output, and branch on it"
version = "1.0.0"
priority = "medium"
execution_mode = "automatic"   # supervised would ask for approval before the first step
cooldown_secs = 0

[vars]
who = { default = "world", pattern = '^[A-Za-z0-9 _.-]{1,64}$', description = "whom to greet" }
"#;

const EXAMPLE_MD: &str = r#"# Hello

## Steps

1. **Greet** — print a greeting; `who` arrives as an environment variable
   ```bash
   echo "hello, ${who}"
   ```

2. **Check the disk** — record a variable for the next step through `$SOP_OUTPUT`
   ```bash
   free_kb=$(df -Pk . | awk 'NR==2 {print $4}')
   echo "free: ${free_kb} KiB"
   if [ "$free_kb" -gt 1048576 ]; then echo "disk_ok=true" >> "$SOP_OUTPUT"; fi
   ```

3. **Report** [if: disk_ok]
   ```bash
   echo "more than 1 GiB free: all good"
   ```

4. **Warn** [if: !disk_ok]
   ```bash
   echo "less than 1 GiB free" >&2
   ```

## Rollback

1. **Say what failed**
   ```bash
   echo "run ${SOP_RUN_ID} failed; nothing to undo"
   ```
"#;

const EXAMPLE_CONFIG: &str = r#"# sop runner configuration. Every key is optional; these are the defaults.
# workers = 4
# sqlite_synchronous = "full"
# step_output_limit = "1MiB"
# kill_grace_secs = 10
# audit_group_ms = 100
# secret_env = ["AWS_SECRET_ACCESS_KEY"]
"#;

fn write_new(path: &Path, text: &str) -> anyhow::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    fs::write(path, text).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(true)
}

pub fn init(home: &Home) -> CmdResult {
    let example = home.sop_dir("hello");
    for dir in [
        example.clone(),
        home.root().join("logs").join("sop"),
        home.state_dir(),
    ] {
        fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    let mut made = Vec::new();
    for (path, text) in [
        (example.join("SOP.toml"), EXAMPLE_TOML),
        (example.join("SOP.md"), EXAMPLE_MD),
        (home.config_path(), EXAMPLE_CONFIG),
    ] {
        if write_new(&path, text)? {
            made.push(home.display(&path));
        }
    }
    if made.is_empty() {
        eprintln!(
            "home `{}` already set up; nothing changed",
            home.root().display()
        );
    } else {
        eprintln!(
            "created in `{}`: {}",
            home.root().display(),
            made.join(", ")
        );
        eprintln!("try: sop run hello --var who=you");
    }
    Ok(Exit::Ok)
}
