//! Durable commits without holding the connection while the disk syncs (group commit).
//!
//! With `synchronous = "full"` (the default), `SQLite` itself would `fdatasync` the
//! write-ahead log inside every commit, while this process's one connection is locked: the
//! daemon's drivers and API requests then wait for each other's syncs as well as their own.
//! Instead the connection runs at `synchronous=NORMAL` (a commit writes its log frames and
//! returns; `SQLite` still syncs around checkpoints and when the log is reused), and
//! [`WalSync`] syncs the log after the connection is unlocked:
//!
//! - a store call that wrote returns only once a sync that started after its commit has
//!   succeeded, so what it committed is on disk, as with `FULL`;
//! - every other call first waits for the commits it could have seen: no caller acts on, or
//!   shows, a state that a power loss could take back. That includes other processes'
//!   commits (`SQLite` shows a commit to other connections before its process syncs it):
//!   when `PRAGMA data_version` says another connection committed, the call syncs the log
//!   itself (one `fdatasync` covers every write to the file, whoever made it);
//! - one sync covers every commit made before it starts, so commits made while a sync runs
//!   share the next one.
//!
//! The log's inode stays the same while this process has the database open: `SQLite`
//! removes the file only when its last connection closes, and restarts or truncates it in
//! place. A sync that fails leaves unknown what reached the disk (the kernel may have
//! dropped the pages it could not write), so every later call fails (a call whose commit
//! was synced before is still answered), until the process is restarted.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use crate::StoreError;

/// The database's write-ahead log and how far it is on disk.
pub(crate) struct WalSync {
    log: File,
    /// Commits that must be durable, counted as they are made (under the connection's lock,
    /// after their log frames were written).
    made: AtomicU64,
    state: Mutex<State>,
    synced_cv: Condvar,
    /// Tests: the next sync says it started, then waits to be let go.
    #[cfg(test)]
    pub(crate) hold: Mutex<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>>,
}

#[derive(Default)]
struct State {
    /// Every commit up to this count is on disk.
    synced: u64,
    /// A sync is running (others wait for it rather than start their own).
    syncing: bool,
    /// Why a sync failed: from then on, nothing is known to be durable.
    failed: Option<String>,
    /// Syncs made, for tests.
    #[cfg_attr(not(test), allow(dead_code))]
    syncs: u64,
}

impl WalSync {
    /// The log of the database at `db`, the name `SQLite` resolved (symbolic links followed,
    /// as `SQLite` names its log after the file they lead to), in WAL mode, opened by a
    /// connection that keeps it open.
    pub(crate) fn open(db: &Path) -> Result<WalSync, StoreError> {
        let mut name = db.as_os_str().to_owned();
        name.push("-wal");
        let log = File::open(Path::new(&name)).map_err(|source| StoreError::OpenLog {
            path: Path::new(&name).display().to_string(),
            source,
        })?;
        Ok(WalSync::on(log))
    }

    /// Syncs of `log` (tests: also a file whose sync fails).
    pub(crate) fn on(log: File) -> WalSync {
        WalSync {
            log,
            made: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            synced_cv: Condvar::new(),
            #[cfg(test)]
            hold: Mutex::new(None),
        }
    }

    /// Counts a commit just made that must be durable; call with the connection locked.
    /// Returns its number, for [`WalSync::through`].
    pub(crate) fn made(&self) -> u64 {
        self.made.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The number of the latest commit made.
    pub(crate) fn latest(&self) -> u64 {
        self.made.load(Ordering::SeqCst)
    }

    /// Returns once commit `n` and every one before it are on disk: at once if they are,
    /// after the running sync if it covers them, else after a sync of its own (which covers
    /// every commit made until it starts).
    pub(crate) fn through(&self, n: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        loop {
            // A commit synced before a sync failed is on disk: its caller is answered.
            if state.synced >= n {
                return Ok(());
            }
            if let Some(why) = &state.failed {
                return Err(failed(why));
            }
            if state.syncing {
                state = self
                    .synced_cv
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.syncing = true;
            let target = self.latest();
            drop(state);
            #[cfg(test)]
            if let Some((started, go)) = self.hold.lock().unwrap().take() {
                started.send(()).unwrap();
                go.recv().unwrap();
            }
            let result = self.log.sync_data();
            state = self.lock();
            state.syncing = false;
            state.syncs += 1;
            match result {
                Ok(()) => state.synced = state.synced.max(target),
                Err(e) => state.failed = Some(e.to_string()),
            }
            self.synced_cv.notify_all();
        }
    }

    /// An error if a sync failed before: nothing may be written or read as durable since.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        match &self.lock().failed {
            Some(why) => Err(failed(why)),
            None => Ok(()),
        }
    }

    /// Marks a sync failed (tests).
    #[cfg(test)]
    pub(crate) fn fail(&self, why: &str) {
        self.lock().failed = Some(why.to_string());
    }

    /// Device and inode of the file synced (tests).
    #[cfg(test)]
    pub(crate) fn file_id(&self) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        let meta = self.log.metadata().unwrap();
        (meta.dev(), meta.ino())
    }

    /// How many syncs were made (tests).
    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// The count of commits known on disk.
    pub(crate) fn synced(&self) -> u64 {
        self.lock().synced
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn failed(why: &str) -> StoreError {
    StoreError::Unsynced(why.to_string())
}
