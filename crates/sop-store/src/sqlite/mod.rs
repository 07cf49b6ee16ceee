//! The `SQLite` store: one file, WAL, every commit on disk before its call returns by
//! default (`durable.rs`: the log is synced outside the connection's lock, so concurrent
//! commits share syncs). Each decision is a `BEGIN IMMEDIATE` transaction, so several `sop`
//! processes on one home agree.

mod batch;
mod durable;
mod ledger;
mod metrics;
mod migrate;
mod notify;
mod records;
mod runs;
mod schedule;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::StoreError;

/// `sqlite_synchronous` in `sop.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    #[default]
    Full,
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// `SQLite` implementation of [`crate::Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The log, synced after commits (`synchronous = "full"`); `None` with `"normal"`.
    wal: Option<durable::WalSync>,
    /// Commits made on `conn` (counted by its commit hook).
    commits: std::sync::Arc<AtomicU64>,
    /// `PRAGMA data_version` as last read: it changes when another connection commits.
    data_version: AtomicI64,
    /// Rows of `runs` the open transaction changed (`conn`'s update hook); taken as each
    /// store call ends.
    touched: Arc<Mutex<Vec<i64>>>,
    /// Rows of `runs` written by this process's durable commits, by commit number (see
    /// [`durable::WalSync::made`]), while that commit may not be synced yet: what a read of
    /// one run waits for ([`Self::read_run`]).
    unsynced: Mutex<Vec<(i64, u64)>>,
    /// The number of the sync started for the latest commit of another connection seen
    /// (see [`Wait::Seen`]): calls that wait for their own runs' commits wait for it too.
    seen_other: AtomicU64,
    /// Recently read runs by (id, version), so a transaction on a run this process just
    /// wrote does not parse its whole JSON record again. Checked against the committed
    /// `version` inside every transaction, so it never hides another process's write.
    pub(crate) cache: Mutex<runs::RunCache>,
    /// SOP snapshots by content hash (see [`records`]).
    pub(crate) snapshots: Mutex<records::Snapshots>,
    /// New runs waiting to be committed together (see [`batch`]).
    pub(crate) creating: Mutex<Vec<std::sync::Arc<batch::Slot>>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    ///
    /// Switching a new database to WAL takes an exclusive lock and `SQLite` does not call
    /// the busy handler for it, so several processes opening a fresh home at once retry.
    pub fn open(path: &Path, sync: Synchronous) -> Result<SqliteStore, StoreError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match SqliteStore::open_once(path, sync) {
                Err(StoreError::Open { source, .. } | StoreError::Sql(source))
                    if is_busy(&source) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path, sync: Synchronous) -> Result<SqliteStore, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(open_err)?;
        // Every statement on a hot path is cached; rusqlite keeps 16 by default, fewer than
        // this store uses, and an evicted statement is parsed again.
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        // `FULL` durability is `WalSync`'s: `SQLite` itself syncs only around checkpoints.
        conn.pragma_update(None, "synchronous", Synchronous::Normal.pragma())
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // The write-ahead log is kept when this handle closes (no checkpoint then; SQLite's
        // automatic checkpoints still bound it). A `sop` process used to checkpoint and
        // delete it at exit, so the next one wrote a new, growing log, and each commit that
        // grows the file makes its `fdatasync` write the inode too (~0.09 ms per step).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(open_err)?;
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        conn.commit_hook(Some(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            false // let it commit
        }));
        // Every change of a run's row, whichever statement makes it (a run's records never
        // change without its row: its `version` goes up with them), for `read_run`'s waits.
        let touched = Arc::new(Mutex::new(Vec::new()));
        if sync == Synchronous::Full {
            let rows = Arc::clone(&touched);
            conn.update_hook(Some(
                move |_: rusqlite::hooks::Action, _: &str, table: &str, rowid: i64| {
                    if table == "runs" {
                        rows.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(rowid);
                    }
                },
            ));
        }
        // The database's name as SQLite resolved it (symbolic links followed): its log is
        // named after it.
        let resolved = conn
            .path()
            .filter(|p| !p.is_empty())
            .map_or_else(|| path.to_path_buf(), PathBuf::from);
        let data_version = conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(open_err)?;
        let mut store = SqliteStore {
            conn: Mutex::new(conn),
            wal: None,
            commits,
            data_version: AtomicI64::new(data_version),
            touched,
            unsynced: Mutex::new(Vec::new()),
            seen_other: AtomicU64::new(0),
            cache: Mutex::new(runs::RunCache::default()),
            snapshots: Mutex::new(records::Snapshots::default()),
            creating: Mutex::new(Vec::new()),
        };
        store.migrate()?;
        if sync == Synchronous::Full {
            // The log exists now (the migration's transaction ran in WAL mode), and what the
            // migration wrote goes to disk with the first sync.
            let wal = durable::WalSync::open(&resolved)?;
            wal.through(wal.made())?;
            // Synced with the rest of the migration.
            store
                .touched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
            store.wal = Some(wal);
        }
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            migrate::migrate(&tx, &self.snapshots)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Runs `f` with the connection locked; then, unlocked, waits until what `f` committed
    /// is on disk, or (if it wrote nothing) what it could have read (see `durable.rs`).
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_sync(true, f)
    }

    /// [`Self::with`] for a commit that need not survive a power loss (only while processes
    /// live does it matter): not synced. A crash of this process keeps it, and the next
    /// synced commit's sync takes it to disk as well. It waits only for the syncs of the
    /// commits that last wrote the runs it changed (their rows are what it read).
    pub(crate) fn with_unsynced<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_sync(false, f)
    }

    /// [`Self::with`] for a call that only reads: its statements share one read transaction
    /// (one snapshot, and one lock of the log's shared index rather than one per
    /// statement), in which `PRAGMA data_version` also tells whether another connection
    /// committed since the last look.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(wal) = &self.wal else {
            let mut conn = self.lock();
            let tx = conn.transaction()?;
            return f(&tx); // rolled back as it drops: nothing to undo
        };
        self.durably(wal, |conn| match conn.transaction() {
            Ok(tx) => {
                let out = f(&tx);
                (out, self.seen(&tx, Wait::All))
            }
            Err(e) => (Err(e.into()), Wait::All),
        })
    }

    /// [`Self::read`] of run `id` alone (its row, records and snapshot): it waits only for
    /// the sync of this process's last durable commit that wrote that run, not for the
    /// syncs of other runs' commits made meanwhile (a driver about to start a step reads
    /// its run, while other drivers' and the API's commits keep the log syncing). Another
    /// connection's commit is synced first, as by every read.
    pub(crate) fn read_run<T>(
        &self,
        id: &str,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(wal) = &self.wal else {
            return self.read(f);
        };
        self.durably(wal, |conn| {
            let tx = match conn.transaction() {
                Ok(tx) => tx,
                Err(e) => return (Err(e.into()), Wait::All),
            };
            let row = tx
                .prepare_cached("SELECT rowid FROM runs WHERE id = ?1")
                .and_then(|mut stmt| stmt.query_row([id], |r| r.get(0)).optional());
            let row = match row {
                Ok(row) => row,
                Err(e) => return (Err(e.into()), Wait::All),
            };
            let out = f(&tx);
            (out, self.seen(&tx, Wait::Row(row)))
        })
    }

    fn with_sync<T>(
        &self,
        synced: bool,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(wal) = &self.wal else {
            // `synchronous = "normal"`: nothing is synced, as configured.
            return f(&mut self.lock());
        };
        self.durably(wal, |conn| {
            let before = self.commits.load(Ordering::SeqCst);
            let out = f(conn);
            let wrote = self.commits.load(Ordering::SeqCst) != before;
            let wait = match (wrote, synced) {
                (true, true) => Wait::Sync,
                (true, false) => self.seen(conn, Wait::Written),
                (false, _) => self.seen(conn, Wait::All),
            };
            (out, wait)
        })
    }

    /// `otherwise`, unless another connection committed since the last look: then a sync.
    fn seen(&self, conn: &Connection, otherwise: Wait) -> Wait {
        if self.another_committed(conn) {
            Wait::Seen
        } else {
            otherwise
        }
    }

    /// With the connection locked, `call` does the work and says what it must wait for
    /// ([`Wait`]); then, unlocked, this waits for it.
    fn durably<T>(
        &self,
        wal: &durable::WalSync,
        call: impl FnOnce(&mut Connection) -> (Result<T, StoreError>, Wait),
    ) -> Result<T, StoreError> {
        wal.check()?;
        let (out, through) = {
            let mut conn = self.lock();
            let (out, wait) = call(&mut conn);
            let touched = std::mem::take(
                &mut *self
                    .touched
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            let through = match wait {
                Wait::All => wal.latest(),
                Wait::Sync | Wait::Seen => {
                    let n = wal.made();
                    if matches!(wait, Wait::Seen) {
                        self.seen_other.fetch_max(n, Ordering::SeqCst);
                    }
                    if !touched.is_empty() {
                        let mut unsynced = self.unsynced();
                        let synced = wal.synced();
                        unsynced.retain(|(_, m)| *m > synced);
                        unsynced.extend(touched.into_iter().map(|row| (row, n)));
                    }
                    n
                }
                Wait::Row(row) => self.through_rows(|r| Some(r) == row),
                Wait::Written => self.through_rows(|r| touched.contains(&r)),
            };
            (out, through)
        };
        wal.through(through)?;
        out
    }

    /// The commit a call that read only the rows of `runs` that `read` picks waits for:
    /// the last durable commit of this process that wrote one of them, and the sync started
    /// for the latest other connection's commit seen (only the first call to see a commit
    /// is told of it by `PRAGMA data_version`; that sync may still run).
    fn through_rows(&self, read: impl Fn(i64) -> bool) -> u64 {
        self.unsynced()
            .iter()
            .filter(|(row, _)| read(*row))
            .map(|(_, n)| *n)
            .fold(self.seen_other.load(Ordering::SeqCst), u64::max)
    }

    fn unsynced(&self) -> MutexGuard<'_, Vec<(i64, u64)>> {
        self.unsynced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether another connection (another `sop` process) committed since the last look:
    /// what `f` read may not be on disk yet. `true` when that cannot be told.
    fn another_committed(&self, conn: &Connection) -> bool {
        let version = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut stmt| stmt.query_row([], |r| r.get::<_, i64>(0)));
        match version {
            Ok(v) => self.data_version.swap(v, Ordering::SeqCst) != v,
            Err(_) => true,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (the transaction
        // rolls back on drop), so a poisoned lock is safe to keep using.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a store call waits for once the connection is unlocked.
enum Wait {
    /// A sync that starts after it: it committed what must be durable.
    Sync,
    /// The same, as it saw another connection's commit (which that connection's process
    /// may not have synced yet).
    Seen,
    /// The syncs of every commit made before: it may have read any of them.
    All,
    /// The sync of the last commit that wrote this row of `runs` (`None`: no such row),
    /// the only one it read, and that of the latest other connection's commit seen.
    Row(Option<i64>),
    /// An unsynced commit (see [`SqliteStore::with_unsynced`]): the syncs of the last
    /// durable commits of the rows of `runs` it changed, the only ones it read, and that of
    /// the latest other connection's commit seen.
    Written,
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::{durable::WalSync, SqliteStore, Synchronous};
    use crate::{Store, StoreError};

    fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("sop.db"), Synchronous::Full).unwrap()
    }

    fn wal(store: &SqliteStore) -> &WalSync {
        store.wal.as_ref().expect("full durability syncs the log")
    }

    /// Holds `store`'s next sync: `started` says it began, a send on `go` lets it end.
    fn hold_next_sync(
        store: &SqliteStore,
    ) -> (std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel();
        *wal(store).hold.lock().unwrap() = Some((started_tx, go_rx));
        (started, go)
    }

    /// A row of `runs` with only what the schema requires, durably.
    fn insert_run_row(store: &SqliteStore, id: &str) {
        store
            .with(|conn| {
                conn.execute(
                    "INSERT INTO runs (id, sop, status, priority, created_at, limits, version, doc, sop_hash)
                     VALUES (?1, 's', 'queued', 1, 0, '{}', 1, '{}', 'h')",
                    [id],
                )?;
                Ok(())
            })
            .unwrap();
    }

    fn version_of(conn: &rusqlite::Connection, id: &str) -> Result<i64, StoreError> {
        Ok(conn.query_row("SELECT version FROM runs WHERE id = ?1", [id], |r| r.get(0))?)
    }

    #[test]
    fn a_write_returns_once_its_commit_is_on_disk_and_a_read_syncs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let before = wal(&store).syncs();
        store.check_writable().unwrap();
        assert_eq!(wal(&store).syncs(), before + 1);
        assert_eq!(wal(&store).synced(), wal(&store).latest());
        store.change_counter().unwrap();
        assert_eq!(
            wal(&store).syncs(),
            before + 1,
            "a read has nothing to sync"
        );
    }

    #[test]
    fn an_unsynced_write_is_not_synced_and_normal_syncs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let before = wal(&store).syncs();
        store
            .with_unsynced(|conn| {
                conn.execute("INSERT INTO meta (key, value) VALUES ('test', 1)", [])?;
                Ok(())
            })
            .unwrap();
        assert_eq!(wal(&store).syncs(), before);
        let normal = SqliteStore::open(&dir.path().join("other.db"), Synchronous::Normal).unwrap();
        assert!(normal.wal.is_none());
        normal.check_writable().unwrap();
    }

    #[test]
    fn concurrent_writers_each_return_after_a_sync_that_covers_their_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let first = wal(&store).syncs();
        let (threads, each) = (8, 25);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    for _ in 0..each {
                        // This call's commit is numbered after every commit made before it.
                        let made_before = wal(&store).latest();
                        store.check_writable().unwrap();
                        assert!(wal(&store).synced() > made_before);
                    }
                });
            }
        });
        let w = wal(&store);
        assert_eq!(w.synced(), w.latest());
        let syncs = w.syncs() - first;
        assert!(
            (1..=threads * each).contains(&syncs),
            "{syncs} syncs for {} commits",
            threads * each
        );
        eprintln!("{syncs} syncs for {} commits", threads * each);
    }

    #[test]
    fn after_a_failed_sync_every_call_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store(&dir);
        // `fdatasync` on a pipe fails (EINVAL), as it may on a disk that lost its writes.
        let (reader, _writer) = std::io::pipe().unwrap();
        store.wal = Some(WalSync::on(std::fs::File::from(
            std::os::fd::OwnedFd::from(reader),
        )));
        let err = store.check_writable().unwrap_err();
        assert!(matches!(err, StoreError::Unsynced(_)), "{err}");
        assert!(err.to_string().contains("start them again"), "{err}");
        // Nothing after is taken as durable, not even a read.
        assert!(matches!(
            store.change_counter().unwrap_err(),
            StoreError::Unsynced(_)
        ));
    }

    #[test]
    fn the_log_synced_is_the_one_sqlite_writes_also_through_a_symbolic_link() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(dir.path().join("real").join("x.db"), &link).unwrap();
        let store = SqliteStore::open(&link, Synchronous::Full).unwrap();
        store.check_writable().unwrap();
        let log = std::fs::metadata(dir.path().join("real").join("x.db-wal")).unwrap();
        assert_eq!(wal(&store).file_id(), (log.dev(), log.ino()));
        assert!(!dir.path().join("link.db-wal").exists());
    }

    #[test]
    fn a_read_of_another_connections_commit_syncs_the_log_first() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (store(&dir), store(&dir));
        b.change_counter().unwrap();
        let before = wal(&b).syncs();
        // `a` commits without a sync (as another process may be about to sync it).
        a.with_unsynced(|conn| {
            conn.execute("INSERT INTO meta (key, value) VALUES ('test', 1)", [])?;
            Ok(())
        })
        .unwrap();
        b.change_counter().unwrap();
        assert_eq!(wal(&b).syncs(), before + 1, "b saw a's commit: b syncs it");
        b.change_counter().unwrap();
        assert_eq!(wal(&b).syncs(), before + 1, "nothing new: no sync");
    }

    #[test]
    fn a_commit_synced_before_a_sync_failed_is_still_answered() {
        let dir = tempfile::tempdir().unwrap();
        let wal = WalSync::on(std::fs::File::create(dir.path().join("log")).unwrap());
        let first = wal.made();
        wal.through(first).unwrap();
        wal.fail("test");
        assert!(wal.through(first).is_ok());
        assert!(matches!(
            wal.through(wal.made()),
            Err(StoreError::Unsynced(_))
        ));
    }

    #[test]
    fn a_read_waits_for_the_sync_of_a_commit_it_could_see() {
        use std::sync::mpsc::{channel, RecvTimeoutError};
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let (started, go) = hold_next_sync(&store);
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| store.check_writable());
            // The writer's commit is made and visible; its sync has started and is held.
            started.recv().unwrap();
            let (read_tx, read) = channel();
            let store = &store;
            scope.spawn(move || read_tx.send(store.change_counter()).unwrap());
            let early = read.recv_timeout(Duration::from_millis(100));
            go.send(()).unwrap();
            assert_eq!(
                early.map(drop),
                Err(RecvTimeoutError::Timeout),
                "the read answered before the commit it saw was on disk"
            );
            assert!(read.recv().unwrap().is_ok());
            assert!(writer.join().unwrap().is_ok());
        });
        assert_eq!(wal(&store).synced(), wal(&store).latest());
    }

    #[test]
    fn a_read_of_one_run_waits_for_the_sync_of_that_runs_last_commit_only() {
        waits_for_that_runs_last_commit_only(false);
    }

    #[test]
    fn an_unsynced_write_of_one_run_waits_for_the_sync_of_that_runs_last_commit_only() {
        waits_for_that_runs_last_commit_only(true);
    }

    #[test]
    fn a_read_of_one_run_waits_for_the_sync_of_another_connections_commit_seen_before() {
        use std::sync::mpsc::{channel, RecvTimeoutError};
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (store(&dir), store(&dir));
        insert_run_row(&a, "r");
        b.change_counter().unwrap();
        // Another process commits run r's new version and has not synced it yet.
        a.with_unsynced(|conn| {
            conn.execute("UPDATE runs SET version = 2 WHERE id = 'r'", [])?;
            Ok(())
        })
        .unwrap();
        let (started, go) = hold_next_sync(&b);
        std::thread::scope(|scope| {
            // The first call of b to see it syncs the log (held here) ...
            let first = scope.spawn(|| b.change_counter());
            started.recv().unwrap();
            // ... and a read of run r meanwhile, which sees nothing new, waits for it.
            let (read_tx, read) = channel();
            let b = &b;
            scope.spawn(move || {
                read_tx
                    .send(b.read_run("r", |conn| version_of(conn, "r")))
                    .unwrap();
            });
            let early = read.recv_timeout(Duration::from_millis(100));
            go.send(()).unwrap();
            assert_eq!(
                early.map(drop),
                Err(RecvTimeoutError::Timeout),
                "run r's version from another process was read before it was on disk"
            );
            assert_eq!(read.recv().unwrap().unwrap(), 2);
            assert!(first.join().unwrap().is_ok());
        });
    }

    /// Run b's new version is committed, its sync held: a call about run a answers at
    /// once, one about run b once b's commit is on disk.
    fn waits_for_that_runs_last_commit_only(unsynced_write: bool) {
        use std::sync::mpsc::{channel, RecvTimeoutError};
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        insert_run_row(&store, "a");
        insert_run_row(&store, "b");
        let version = |id: &str| {
            if unsynced_write {
                // As a pid is recorded: a write of the run that is not synced.
                store.with_unsynced(|conn| {
                    conn.execute("UPDATE runs SET owner_pid = 7 WHERE id = ?1", [id])?;
                    version_of(conn, id)
                })
            } else {
                store.read_run(id, |conn| version_of(conn, id))
            }
        };
        let (started, go) = hold_next_sync(&store);
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| {
                store.with(|conn| {
                    conn.execute("UPDATE runs SET version = version + 1 WHERE id = 'b'", [])?;
                    Ok(())
                })
            });
            // Run b's new version is committed and visible; its sync is held.
            started.recv().unwrap();
            let (read_tx, read) = channel();
            let (read_a, read_b) = (read_tx.clone(), read_tx);
            let version = &version;
            scope.spawn(move || read_a.send(("a", version("a"))).unwrap());
            let a = read.recv_timeout(Duration::from_secs(10));
            scope.spawn(move || read_b.send(("b", version("b"))).unwrap());
            let early_b = read.recv_timeout(Duration::from_millis(100));
            go.send(()).unwrap();
            assert_eq!(
                a.map(|(id, v)| (id, v.unwrap())),
                Ok(("a", 1)),
                "run a's last commit is on disk: its read does not wait for run b's"
            );
            assert_eq!(
                early_b.map(|(id, _)| id),
                Err(RecvTimeoutError::Timeout),
                "run b was read before its new version was on disk"
            );
            let (id, v) = read.recv().unwrap();
            assert_eq!((id, v.unwrap()), ("b", 2));
            assert!(writer.join().unwrap().is_ok());
        });
        assert_eq!(wal(&store).synced(), wal(&store).latest());
    }
}
