//! The per-run audit file (SPEC §7): one JSON document, rewritten atomically (written
//! beside it, then exchanged into place; see [`swap_in`]) after every committed transition;
//! fsynced (file and directory) whenever the run comes to rest (waits, ends), not between
//! two steps of a moving run, nor for a new queued run in a served home (see [`Sync`]); the
//! files of runs `sop serve` ends are synced in groups (`settle.rs`).
//! `sop status --json` prints the same document.
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
mod settle;

pub use settle::{Registration, Settler};

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
    /// write, fsync, exchange, fsync of the directory: survives a power loss. (A spare that
    /// an unsynced exchange left is not overwritten: another file is filled instead.)
    Durable,
    /// write, exchange: every reader sees a whole, current document, but a power loss may
    /// leave an older, a torn or no file. Only where the store holds the truth and the file
    /// is rewritten durably after a power loss: while the run moves on at once (its next
    /// step is starting; recovery marks that step `interrupted` and rewrites the file), for
    /// a new, queued run (`sop serve` rewrites queued runs' files it finds lost or torn
    /// as it starts: `recovery::repair_queued_audit`), and for a run `sop serve` ended
    /// ([`write_settling`]: synced with a group, or rewritten as `sop serve` starts).
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
    rewrite(store, home, run_id, sync, false).map(drop)
}

/// The rewrite that follows the commit ending a run, for a [`Settler`] to make durable: as
/// [`Sync::Deferred`], and the spare it leaves (`Some` when the run is over) goes to the
/// pool only once the settler has synced the file system (see `write_with` on spares).
pub fn write_settling(
    store: &dyn Store,
    home: &Home,
    run_id: &str,
) -> std::io::Result<Option<PathBuf>> {
    rewrite(store, home, run_id, Sync::Deferred, true)
}

/// The final file of run `id`, which a commit of this process just ended. With a daemon's
/// `settler` (the run registered with it before that commit, and kept): written now, made
/// durable with the settler's next group; failing that, rewritten durably; failing that
/// too, the run stays registered (the mark holds before it; the next start rewrites the
/// file). Without: rewritten durably.
pub fn write_final(
    store: &dyn Store,
    home: &Home,
    settler: Option<&Settler>,
    id: &str,
) -> std::io::Result<()> {
    let Some(settler) = settler else {
        return write(store, home, id);
    };
    match write_settling(store, home, id) {
        Ok(spare) => {
            if !settler.written(id, spare) {
                // The settler has closed (the daemon stops): durable here.
                write(store, home, id)?;
            }
        }
        Err(e) => {
            // The file may be torn, and is not synced.
            tracing::warn!("run {id}: audit rewrite failed ({e}); retrying durably");
            write(store, home, id)?;
            settler.rewritten_durably(id);
        }
    }
    Ok(())
}

/// Rewrites the file; `keep_spare`: an ended run's spare is returned instead of pooled.
fn rewrite(
    store: &dyn Store,
    home: &Home,
    run_id: &str,
    sync: Sync,
    keep_spare: bool,
) -> std::io::Result<Option<PathBuf>> {
    let to_io = |e: sop_store::StoreError| std::io::Error::other(e.to_string());
    let Some(rel) = audit_path(store, run_id).map_err(to_io)? else {
        return Ok(None);
    };
    let (path, dir, lock) = locked(home, &rel, run_id)?;
    let Some(run) = store.load_run(run_id).map_err(to_io)? else {
        return Ok(None);
    };
    let body = render::file(&run)?;
    let spare = spare_of(&path);
    let durable = sync == Sync::Durable;
    // The file the rewrite is prepared in: the run's spare, overwritten in place (then cut
    // to length: truncating first would free its blocks only for the write to allocate
    // them again) ...
    let open = |at: &Path, create: bool| {
        OpenOptions::new()
            .write(true)
            .create(create)
            .truncate(false)
            .open(at)
    };
    let (target, mut f) = match open(&spare, false) {
        // ... except where that spare may be the inode the directory still names on disk:
        // after an exchange not followed by a directory sync (a `Deferred` rewrite, here or
        // in another process), a power loss could bring the old entry back, and a file
        // overwritten in place would come back torn. A durable rewrite then fills another
        // file, and the spare stays as it is until the directory is synced.
        Ok(_) if durable && !synced_since_exchange(run_id) => {
            let other = other_of(&path);
            if other.exists() {
                // Left by a rewrite that stopped halfway (a crash): it too may be what the
                // directory names on disk, so the directory is synced before it is reused.
                File::open(&dir)?.sync_all()?;
            } else {
                take_pooled(&dir, &other)?;
            }
            let f = open(&other, true)?;
            (other, f)
        }
        Ok(f) => (spare.clone(), f),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // The run's first rewrites: a spare from the pool (ended runs leave theirs).
            take_pooled(&dir, &spare)?;
            (spare.clone(), open(&spare, true)?)
        }
        Err(e) => return Err(e),
    };
    f.write_all(&body)?;
    f.set_len(body.len() as u64)?;
    if durable {
        // The length is data: `fdatasync` writes it; the file's times are left.
        f.sync_data()?;
    }
    drop(f);
    swap_in(&target, &path)?;
    if durable {
        // The exchange is durable once the directory entry is.
        File::open(&dir)?.sync_all()?;
    }
    // Only now (the directory names the new file on disk) may the previous file be
    // overwritten, by this run or, from the pool, by another.
    if target != spare {
        give_back(&target, &dir);
    }
    let mut kept = None;
    if run.status.is_terminal() {
        // The run is over: its spare goes to the pool for the next runs of the SOP
        // (freeing it would slow down later inode allocations, see `swap_in`), once the
        // directory names the new file on disk.
        if durable {
            give_back(&spare, &dir);
        } else if keep_spare {
            kept = Some(spare);
        }
    }
    note_exchange(run_id, sync == Sync::Durable, run.status.is_terminal());
    drop(lock);
    Ok(kept)
}

/// Writes the first audit file of `run`, just created and committed, from the run in hand
/// (no store read: concurrent execute requests do not queue for the store's connection
/// here), without syncs (see [`Sync::Deferred`]). If the file exists already, a driver
/// that claimed the run wrote a newer state first, and it stays.
pub fn write_new(home: &Home, run: &Run, rel: &str) -> std::io::Result<()> {
    use nix::errno::Errno;
    use nix::fcntl::{renameat2, RenameFlags};
    let (path, dir, lock) = locked(home, rel, &run.id)?;
    let body = render::file(run)?;
    // Prepared under its own name: `.next` may be a spare an unsynced exchange left.
    let new = beside(&path, "new");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&new)?;
    f.write_all(&body)?;
    drop(f);
    let placed = match renameat2(None, &new, None, &path, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => true,
        Err(Errno::EEXIST) => false,
        // A file system without `RENAME_NOREPLACE`: look, then rename (under the run's lock).
        Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
            if path.exists() {
                false
            } else {
                fs::rename(&new, &path)?;
                true
            }
        }
        Err(e) => return Err(std::io::Error::from(e)),
    };
    if placed {
        note_path(&run.id, rel);
    } else {
        // The file exists: it is newer (the run may even be over). This one was never the
        // audit file: it goes to the pool.
        give_back(&new, &dir);
    }
    drop(lock);
    Ok(())
}

/// The audit file `rel` of run `run_id`, its directory, and the run's lock on it, held (see
/// `lock_run`) until the returned file is dropped.
fn locked(home: &Home, rel: &str, run_id: &str) -> std::io::Result<(PathBuf, PathBuf, File)> {
    let path = home.root().join(rel);
    let dir = path
        .parent()
        .map_or_else(|| home.root().to_path_buf(), Path::to_path_buf);
    let lock = open_lock(&dir)?;
    lock_run(&lock, run_id)?;
    Ok((path, dir, lock))
}

/// Spares left by ended runs in an audit directory, for the next runs (`.spare`,
/// `.spare-1`, ...): a rewrite takes one instead of creating a file, so runs allocate and
/// free no inodes beyond their own files. Slots are claimed by renaming, which is atomic:
/// no lock is needed between the writers of different runs.
const POOL: usize = 4;

fn pool_slot(dir: &Path, k: usize) -> PathBuf {
    if k == 0 {
        dir.join(".spare")
    } else {
        dir.join(format!(".spare-{k}"))
    }
}

/// Moves a pooled spare to `to` (which does not exist); `false` if the pool is empty.
fn take_pooled(dir: &Path, to: &Path) -> std::io::Result<bool> {
    for k in 0..POOL {
        match fs::rename(pool_slot(dir, k), to) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Moves `from` into a free pool slot, or removes it when the pool is full. Bookkeeping
/// after a finished rewrite: a failure is logged, never the rewrite's error (a leftover
/// spare costs an inode, nothing else).
fn give_back(from: &Path, dir: &Path) {
    use nix::errno::Errno;
    use nix::fcntl::{renameat2, RenameFlags};
    for k in 0..POOL {
        match renameat2(
            None,
            from,
            None,
            &pool_slot(dir, k),
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) | Err(Errno::ENOENT) => return,
            Err(Errno::EEXIST) => {}
            // No `RENAME_NOREPLACE` here: no pool.
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => break,
            Err(e) => {
                tracing::warn!("audit: cannot pool the spare `{}`: {e}", from.display());
                return;
            }
        }
    }
    match fs::remove_file(from) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            tracing::warn!("audit: cannot remove the spare `{}`: {e}", from.display());
        }
        _ => {}
    }
}

/// The file a rewrite is prepared in: `.<name>.next` beside the audit file.
fn spare_of(path: &Path) -> PathBuf {
    beside(path, "next")
}

/// Where a durable rewrite is prepared when the spare must stay as it is (see `write_with`).
fn other_of(path: &Path) -> PathBuf {
    beside(path, "other")
}

fn beside(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{what}"))
}

/// Puts the finished `spare` in place of `path` atomically. Where `path` exists the two are
/// exchanged (`renameat2(RENAME_EXCHANGE)`): the old document becomes the next spare, so a
/// rewrite allocates and frees no inode. Many runs rewrite files many times a second, and on
/// ext4 without a journal each freed inode makes the next allocation slower for about 30 s
/// (`recently_deleted`), which made drains of thousands of runs slow down as they went.
/// A reader still reading the old file when the *next* rewrite fills it in place (about one
/// step later in a moving run) may read a mix of two documents: one that opens, reads and
/// closes at once always sees a whole document; one stalled between its open and its read
/// for that long (a loaded machine) may not (README, "Audit files").
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
        store
            .create_run(created.clone(), rel, None, T0)
            .expect("created");
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
        let dir = home.root().join("logs/sop/deploy");
        assert!(!dir.join(".n.json.new").exists(), "nothing left behind");
        assert!(dir.join(".spare").exists(), "the unused file is pooled");
    }

    #[test]
    fn a_durable_rewrite_never_overwrites_a_file_an_unsynced_exchange_left() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().expect("temp dir");
        let home = Home::new(tmp.path());
        fs::create_dir_all(home.state_dir()).expect("state dir");
        let store = SqliteStore::open(&home.db_path(), Synchronous::Normal).expect("store");
        store
            .create_run(
                moving("audit-unsynced", 3),
                "logs/sop/deploy/u.json",
                None,
                T0,
            )
            .expect("created");
        let dir = home.root().join("logs/sop/deploy");
        let (file, spare) = (dir.join("u.json"), dir.join(".u.json.next"));
        let inode = |p: &Path| fs::metadata(p).expect("exists").ino();
        let change = |n: i64| {
            store
                .update_run("audit-unsynced", T0 + n, &mut |r, _| {
                    r.error = Some(format!("change {n}"));
                    Ok(())
                })
                .expect("update")
                .expect("not refused");
        };
        write(&store, &home, "audit-unsynced").expect("written");
        let first = inode(&file);
        change(1);
        write_with(&store, &home, "audit-unsynced", Sync::Deferred).expect("written");
        let second = inode(&file);
        // Unsynced: the directory may still name `first` on disk as the audit file.
        assert_eq!(inode(&spare), first);
        let before = fs::read(&spare).expect("spare");
        change(2);
        write(&store, &home, "audit-unsynced").expect("written");
        assert!(
            ![first, second].contains(&inode(&file)),
            "written into a third file"
        );
        assert_eq!(inode(&spare), first, "the spare stays");
        assert_eq!(fs::read(&spare).expect("spare"), before, "untouched");
        assert_eq!(inode(&dir.join(".spare")), second, "pooled after the sync");
        // Synced now: the next durable rewrite overwrites the spare as usual.
        change(3);
        write(&store, &home, "audit-unsynced").expect("written");
        assert_eq!(inode(&file), first);
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
