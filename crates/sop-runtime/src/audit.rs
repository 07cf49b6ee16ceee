//! The per-run audit file (SPEC §7): one JSON document, rewritten atomically (written
//! beside it, then exchanged into place; see [`swap_in`]) after every committed transition; fsynced (file and directory) whenever the run
//! comes to rest (waits, queues, ends), not between two steps of a moving run (see
//! [`Sync`]). `sop status --json` prints the same document.
//!
//! `doc.rs` says what the document holds (typed structs borrowing from the run);
//! `render.rs` renders the file from kept per-record fragments, so a rewrite costs about a
//! copy of the file's bytes however many steps the run has.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

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

/// The audit file path of a run created at `created_at`: `<timestamp>-<run id>.json`.
/// The run id makes it unique without looking at the directory: two runs created in the same
/// millisecond (concurrent execute requests, or two processes) never share a file.
pub fn new_path(home: &Home, sop: &str, created_at: i64, run_id: &str) -> PathBuf {
    home.logs_dir(sop)
        .join(format!("{}-{run_id}.json", file_stamp(created_at)))
}

/// How far an audit rewrite goes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// write, fsync, exchange, fsync of the directory: survives a power loss. (Before
    /// overwriting a spare that an unsynced exchange left, the directory is synced first.)
    Durable,
    /// write, exchange: every reader sees a whole, current document, but a power loss may
    /// leave an older, a torn or no file. Only where the store holds the truth and the file
    /// is rewritten durably after a power loss: while the run moves on at once (its next
    /// step is starting; recovery marks that step `interrupted` and rewrites the file), and
    /// for a new, queued run (`sop serve` rewrites queued runs' files it finds lost or torn
    /// as it starts: `recovery::repair_queued_audit`).
    Deferred,
}

/// Rewrites the audit file of `run_id` with the newest committed state, durably.
///
/// Several processes may commit transitions of one run (the owner, an approver); each
/// rewrites the file after its commit. Under the run's lock (see `lock_run`), each writer
/// re-reads the run from the store, so the file always ends at the newest committed state
/// whatever the order of writers.
pub fn write(store: &dyn Store, home: &Home, run_id: &str) -> std::io::Result<()> {
    write_with(store, home, run_id, Sync::Durable)
}

/// [`write`], choosing how far the rewrite goes to disk.
pub fn write_with(store: &dyn Store, home: &Home, run_id: &str, sync: Sync) -> std::io::Result<()> {
    let to_io = |e: sop_store::StoreError| std::io::Error::other(e.to_string());
    let Some(rel) = audit_path(store, run_id).map_err(to_io)? else {
        return Ok(());
    };
    let path = home.root().join(rel);
    let dir = path
        .parent()
        .map_or_else(|| home.root().to_path_buf(), Path::to_path_buf);
    let lock = open_lock(&dir)?;
    lock_run(&lock, run_id)?;
    let Some(run) = store.load_run(run_id).map_err(to_io)? else {
        return Ok(());
    };
    let body = render::file(&run)?;
    let spare = spare_of(&path);
    let kept = dir.join(KEPT_SPARE);
    {
        // Overwritten in place, then cut to length: truncating first would free the
        // spare's blocks only for the write to allocate them again.
        let open = |create: bool| {
            OpenOptions::new()
                .write(true)
                .create(create)
                .truncate(false)
                .open(&spare)
        };
        let mut f = match open(false) {
            Ok(f) => {
                // This spare may be the inode the directory still names on disk: after an
                // exchange not followed by a directory sync (a `Deferred` rewrite, here or
                // in another process), a power loss could bring the old entry back. A
                // durable rewrite must not overwrite that inode before the directory is
                // synced, or the file could come back torn.
                if sync == Sync::Durable && !synced_since_exchange(run_id) {
                    File::open(&dir)?.sync_all()?;
                }
                f
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // The run's first rewrites: take the spare an ended run left, if any.
                match fs::rename(&kept, &spare) {
                    Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                open(true)?
            }
            Err(e) => return Err(e),
        };
        f.write_all(&body)?;
        f.set_len(body.len() as u64)?;
        if sync == Sync::Durable {
            f.sync_all()?;
        }
    }
    swap_in(&spare, &path)?;
    if run.status.is_terminal() {
        // The run is over: its spare is kept for the next run of the SOP (freeing it would
        // slow down later inode allocations, see `swap_in`); one is enough.
        keep_spare(&spare, &kept)?;
    }
    if sync == Sync::Durable {
        // The rename is durable once the directory entry is.
        File::open(&dir)?.sync_all()?;
    }
    note_exchange(run_id, sync == Sync::Durable, run.status.is_terminal());
    drop(lock);
    Ok(())
}

/// Writes the first audit file of `run`, just created and committed, from the run in hand
/// (no store read: concurrent execute requests do not queue for the store's connection
/// here), without syncs (see [`Sync::Deferred`]). If the file exists already, a driver
/// that claimed the run wrote a newer state first, and it stays.
pub fn write_new(home: &Home, run: &Run, rel: &str) -> std::io::Result<()> {
    use nix::errno::Errno;
    use nix::fcntl::{renameat2, RenameFlags};
    note_path(&run.id, rel);
    let path = home.root().join(rel);
    let dir = path
        .parent()
        .map_or_else(|| home.root().to_path_buf(), Path::to_path_buf);
    let lock = open_lock(&dir)?;
    lock_run(&lock, &run.id)?;
    let body = render::file(run)?;
    let spare = spare_of(&path);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&spare)?;
    f.write_all(&body)?;
    drop(f);
    match renameat2(None, &spare, None, &path, RenameFlags::RENAME_NOREPLACE) {
        // The file exists: it is newer. The spare stays, for the run's next rewrite.
        Ok(()) | Err(Errno::EEXIST) => {}
        // A file system without `RENAME_NOREPLACE`: look, then rename (under the run's lock).
        Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
            if !path.exists() {
                fs::rename(&spare, &path)?;
            }
        }
        Err(e) => return Err(std::io::Error::from(e)),
    }
    drop(lock);
    Ok(())
}

/// The spare an ended run leaves in its audit directory for the next run (under the
/// directory's lock, like every rewrite).
const KEPT_SPARE: &str = ".spare";

/// Moves `spare` to `kept` unless a spare is kept already (then `spare` is removed).
fn keep_spare(spare: &Path, kept: &Path) -> std::io::Result<()> {
    use nix::errno::Errno;
    use nix::fcntl::{renameat2, RenameFlags};
    match renameat2(None, spare, None, kept, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        // A spare is kept already, or the file system has no `RENAME_NOREPLACE`: this one
        // goes.
        Err(Errno::EEXIST | Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
            match fs::remove_file(spare) {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
        Err(e) => Err(std::io::Error::from(e)),
    }
}

/// The file a rewrite is prepared in: `.<name>.next` beside the audit file.
fn spare_of(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.next"))
}

/// Puts the finished `spare` in place of `path` atomically. Where `path` exists the two are
/// exchanged (`renameat2(RENAME_EXCHANGE)`): the old document becomes the next spare, so a
/// rewrite allocates and frees no inode. Many runs rewrite files many times a second, and on
/// ext4 without a journal each freed inode makes the next allocation slower for about 30 s
/// (`recently_deleted`), which made drains of thousands of runs slow down as they went.
/// A reader holding the old file open across the *next* rewrite may see it change; one that
/// opens, reads and closes always sees a whole document.
fn swap_in(spare: &Path, path: &Path) -> std::io::Result<()> {
    use nix::errno::Errno;
    use nix::fcntl::{renameat2, RenameFlags};
    match renameat2(None, spare, None, path, RenameFlags::RENAME_EXCHANGE) {
        Ok(()) => Ok(()),
        // No file to exchange with yet (the first write), or a file system without
        // exchange: a plain rename replaces it.
        Err(Errno::ENOENT | Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
            fs::rename(spare, path)
        }
        Err(e) => Err(std::io::Error::from(e)),
    }
}

/// What this process knows of a run it wrote lately.
struct Known {
    /// Random, so unique.
    run_id: String,
    /// The audit file, relative to the home: it never changes once the run is created.
    path: String,
    /// The last exchange of the run's file was followed by a directory sync.
    synced: bool,
}

/// At most [`KNOWN_CAP`] runs, oldest first; ended runs are forgotten.
static KNOWN: Mutex<Vec<Known>> = Mutex::new(Vec::new());
const KNOWN_CAP: usize = 256;

fn known<R>(f: impl FnOnce(&mut Vec<Known>) -> R) -> R {
    f(&mut KNOWN.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Where the audit file of `run_id` is, relative to the home: asked of the store once per
/// run (per process).
fn audit_path(store: &dyn Store, run_id: &str) -> Result<Option<String>, sop_store::StoreError> {
    let path = known(|k| {
        k.iter()
            .find(|r| r.run_id == run_id)
            .map(|r| r.path.clone())
    });
    if path.is_some() {
        return Ok(path);
    }
    let Some(path) = store.run_row(run_id)?.and_then(|row| row.audit_path) else {
        return Ok(None);
    };
    note_path(run_id, &path);
    Ok(Some(path))
}

/// Tells the audit writer where a run just created keeps its file (saves a store read).
pub fn note_path(run_id: &str, path: &str) {
    known(|k| {
        if k.iter().any(|r| r.run_id == run_id) {
            return;
        }
        if k.len() >= KNOWN_CAP {
            k.drain(..KNOWN_CAP / 2);
        }
        k.push(Known {
            run_id: run_id.to_string(),
            path: path.to_string(),
            synced: false,
        });
    });
}

fn synced_since_exchange(run_id: &str) -> bool {
    known(|k| k.iter().any(|r| r.run_id == run_id && r.synced))
}

/// Records whether the exchange just made for `run_id` is on disk (`synced`); an ended
/// run is forgotten.
fn note_exchange(run_id: &str, synced: bool, ended: bool) {
    known(|k| {
        if ended {
            k.retain(|r| r.run_id != run_id);
        } else if let Some(r) = k.iter_mut().find(|r| r.run_id == run_id) {
            r.synced = synced;
        }
    });
}

/// Locks run `run_id`'s rewrites against every other writer of the same run, in any
/// process: an open-file-description lock on one byte of the directory's lock file, chosen
/// by the run id. Writers of different runs (the daemon's execute requests, its drivers)
/// so rarely wait for each other; a whole-file lock made every rewrite of a SOP's runs,
/// fsyncs included, take turns. Released when `lock` is closed.
fn lock_run(lock: &File, run_id: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // FNV-1a: the same byte for a run in every sop process, whatever its build.
    let hash = run_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let range = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: (hash % 65_536) as libc::off_t,
        l_len: 1,
        l_pid: 0,
    };
    loop {
        match nix::fcntl::fcntl(lock.as_raw_fd(), nix::fcntl::FcntlArg::F_OFD_SETLKW(&range)) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(std::io::Error::from(e)),
        }
    }
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

    #[test]
    fn a_new_runs_first_file_never_replaces_a_newer_one() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let home = Home::new(tmp.path());
        fs::create_dir_all(home.state_dir()).expect("state dir");
        let store = SqliteStore::open(&home.db_path(), Synchronous::Normal).expect("store");
        let rel = "logs/sop/deploy/n.json";
        let file = home.root().join(rel);
        let read = || -> Value {
            serde_json::from_slice(&fs::read(&file).expect("audit file")).expect("json")
        };
        let created = moving("audit-new", 2);
        store.create_run(created.clone(), rel, None, T0).expect("created");
        // Nobody wrote yet: the creator's state is the file.
        write_new(&home, &created, rel).expect("written");
        assert_eq!(read(), document(&created));
        // A driver moved the run on and wrote its file before the creator got to it.
        store
            .update_run("audit-new", T0 + 5, &mut |r, _| {
                r.status = RunStatus::Failure;
                Ok(())
            })
            .expect("updated")
            .expect("accepted");
        write(&store, &home, "audit-new").expect("written");
        let newer = read();
        assert_eq!(newer["status"], "failure");
        write_new(&home, &created, rel).expect("written");
        assert_eq!(read(), newer, "the older state must not come back");
    }

    #[test]
    fn writers_of_one_run_take_turns_and_writers_of_two_runs_do_not() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let (held, other) = (
            open_lock(tmp.path()).expect("lock"),
            open_lock(tmp.path()).expect("lock"),
        );
        lock_run(&held, "run-a").expect("locked");
        // Another run: not held up (its byte differs).
        lock_run(&other, "run-b").expect("locked at once");
        drop(other);
        // The same run: waits until the holder lets go.
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = tmp.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let mine = open_lock(&dir).expect("lock");
            lock_run(&mine, "run-a").expect("locked");
            tx.send(()).expect("sent");
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "a second writer of run-a got in while the first held it"
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the second writer gets in once the first lets go");
        waiter.join().expect("thread");
    }

    #[test]
    fn rewrites_exchange_two_files_and_the_spare_goes_when_the_run_ends() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().expect("temp dir");
        let home = Home::new(tmp.path());
        fs::create_dir_all(home.state_dir()).expect("state dir");
        let store = SqliteStore::open(&home.db_path(), Synchronous::Normal).expect("store");
        store
            .create_run(moving("audit-swap", 3), "logs/sop/deploy/y.json", None, T0)
            .expect("created");
        let file = home.root().join("logs/sop/deploy/y.json");
        let spare = home.root().join("logs/sop/deploy/.y.json.next");
        let inode = |p: &Path| fs::metadata(p).expect("exists").ino();
        let read = || -> Value {
            serde_json::from_slice(&fs::read(&file).expect("audit file")).expect("json")
        };
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..4 {
            store
                .update_run("audit-swap", T0 + n, &mut |r, _| {
                    r.error = Some(format!("change {n}"));
                    Ok(())
                })
                .expect("update")
                .expect("not refused");
            write(&store, &home, "audit-swap").expect("written");
            assert_eq!(
                read()["error"],
                format!("change {n}"),
                "the file is current"
            );
            seen.insert(inode(&file));
        }
        assert!(spare.exists(), "an active run keeps its spare");
        assert_eq!(
            seen.len(),
            2,
            "two inodes take turns: none allocated per rewrite"
        );
        store
            .update_run("audit-swap", T0 + 9, &mut |r, ev| {
                sop_core::run::halt(r, "stopped for the test", T0 + 9, ev);
                Ok(())
            })
            .expect("update")
            .expect("not refused");
        write(&store, &home, "audit-swap").expect("written");
        assert!(read()["status"] != "running");
        assert!(!spare.exists(), "an ended run leaves no spare of its own");
        let kept = home.root().join("logs/sop/deploy/.spare");
        let kept_inode = inode(&kept);
        // The next run in the directory starts from the kept spare: no inode allocated.
        store
            .create_run(moving("audit-next", 3), "logs/sop/deploy/z.json", None, T0)
            .expect("created");
        write(&store, &home, "audit-next").expect("written");
        assert_eq!(
            inode(&home.root().join("logs/sop/deploy/z.json")),
            kept_inode
        );
        assert!(!kept.exists(), "taken");
    }
}
