//! The per-run audit file (SPEC §7): one JSON document, rewritten atomically (write,
//! rename) after every committed transition; fsynced (file and directory) whenever the run
//! comes to rest (waits, queues, ends), not between two steps of a moving run (see
//! [`Sync`]). `sop status --json` prints the same document.
//!
//! `doc.rs` says what the document holds (typed structs borrowing from the run);
//! `render.rs` renders the file from kept per-record fragments, so a rewrite costs about a
//! copy of the file's bytes however many steps the run has.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sop_core::run::{Run, RunStatus};
use sop_store::Store;

use crate::clock::file_stamp;
use crate::home::Home;

mod doc;
#[cfg(test)]
mod fixtures;
mod render;

/// The audit document of a run: the seed's fields plus what an operator needs.
pub fn document(run: &Run) -> Value {
    serde_json::to_value(doc::Document::of(run))
        .expect("strings, numbers and maps with string keys always serialize")
}

/// A unique audit file path for a run created at `created_at`.
pub fn new_path(home: &Home, sop: &str, created_at: i64, run_id: &str) -> PathBuf {
    let dir = home.logs_dir(sop);
    let stamp = file_stamp(created_at);
    let plain = dir.join(format!("{stamp}.json"));
    if !plain.exists() {
        return plain;
    }
    let short: String = run_id
        .chars()
        .rev()
        .take(8)
        .collect::<String>()
        .chars()
        .rev()
        .collect();
    dir.join(format!("{stamp}-{short}.json"))
}

/// How far an audit rewrite goes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// write, fsync, rename, fsync of the directory: survives a power loss.
    Durable,
    /// write, rename: every reader sees a whole, current document, but a power loss may
    /// leave an older one. Only while the run moves on at once (its next step is starting):
    /// the store holds the truth, and a run that was moving when power was lost has its
    /// step `interrupted` by recovery, which rewrites its file durably.
    Deferred,
}

/// Rewrites the audit file of `run_id` with the newest committed state, durably.
///
/// Several processes may commit transitions of one run (the owner, an approver); each
/// rewrites the file after its commit. Under an exclusive lock, each writer re-reads the
/// run from the store, so the file always ends at the newest committed state whatever the
/// order of writers.
pub fn write(store: &dyn Store, home: &Home, run_id: &str) -> std::io::Result<()> {
    write_with(store, home, run_id, Sync::Durable)
}

/// [`write`], choosing how far the rewrite goes to disk.
pub fn write_with(store: &dyn Store, home: &Home, run_id: &str, sync: Sync) -> std::io::Result<()> {
    let to_io = |e: sop_store::StoreError| std::io::Error::other(e.to_string());
    let Some(row) = store.run_row(run_id).map_err(to_io)? else {
        return Ok(());
    };
    let Some(rel) = row.audit_path else {
        return Ok(());
    };
    let path = home.root().join(rel);
    let dir = path
        .parent()
        .map_or_else(|| home.root().to_path_buf(), Path::to_path_buf);
    let lock = open_lock(&dir)?;
    lock.lock()?;
    let Some(run) = store.load_run(run_id).map_err(to_io)? else {
        return Ok(());
    };
    let body = render::file(&run)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&body)?;
        if sync == Sync::Durable {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, &path)?;
    if sync == Sync::Durable {
        // The rename is durable once the directory entry is.
        File::open(&dir)?.sync_all()?;
    }
    drop(lock);
    Ok(())
}

/// The lock file of the audit directory `dir`, made with the directory when either is
/// missing (the first run of a SOP, or someone removed `logs/`).
fn open_lock(dir: &Path) -> std::io::Result<File> {
    let open = || {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))
    };
    open().or_else(|e| match e.kind() {
        ErrorKind::NotFound => fs::create_dir_all(dir).and_then(|()| open()),
        _ => Err(e),
    })
}

/// Whether the run ended well, for the summary.
pub fn succeeded(status: RunStatus) -> bool {
    status == RunStatus::Success
}

#[cfg(test)]
mod tests {
    use sop_store::{SqliteStore, Synchronous};

    use super::*;
    use crate::audit::fixtures::{moving, T0};

    #[test]
    fn the_file_is_the_document_and_survives_a_removed_logs_directory() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let home = Home::new(tmp.path());
        fs::create_dir_all(home.state_dir()).expect("state dir");
        let store = SqliteStore::open(&home.db_path(), Synchronous::Normal).expect("store");
        let run = moving("audit-write", 3);
        store
            .create_run(run, "logs/sop/deploy/x.json", None, T0)
            .expect("created");
        let file = home.root().join("logs/sop/deploy/x.json");
        let read = || -> Value {
            serde_json::from_slice(&fs::read(&file).expect("audit file")).expect("json")
        };
        let stored = || store.load_run("audit-write").expect("load").expect("run");

        write(&store, &home, "audit-write").expect("written");
        assert_eq!(read(), document(&stored()));
        fs::remove_dir_all(home.root().join("logs")).expect("removed");
        write_with(&store, &home, "audit-write", Sync::Deferred).expect("written again");
        assert_eq!(read(), document(&stored()));
        assert!(!file.with_extension("json.tmp").exists());
    }
}
