//! The `SQLite` store: one file, WAL, `synchronous=FULL` by default. Each decision is a
//! `BEGIN IMMEDIATE` transaction, so several `sop` processes on one home agree.

mod batch;
mod migrate;
mod records;
mod runs;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

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
    sync: Synchronous,
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
        conn.pragma_update(None, "synchronous", sync.pragma())
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
        let store = SqliteStore {
            conn: Mutex::new(conn),
            sync,
            cache: Mutex::new(runs::RunCache::default()),
            snapshots: Mutex::new(records::Snapshots::default()),
            creating: Mutex::new(Vec::new()),
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        migrate::migrate(&tx, &self.snapshots)?;
        tx.commit()?;
        Ok(())
    }

    /// Makes the next commits on `conn` not fsynced (`synchronous=NORMAL`): in WAL mode
    /// such a commit survives a crash of this process but not a power loss, and the next
    /// `FULL` commit fsyncs the log and so makes it durable as well. [`Self::restore`] undoes it.
    pub(crate) fn relax(&self, conn: &Connection) -> Result<(), StoreError> {
        if self.sync != Synchronous::Normal {
            conn.prepare_cached("PRAGMA synchronous = NORMAL")?
                .execute([])?;
        }
        Ok(())
    }

    pub(crate) fn restore(&self, conn: &Connection) -> Result<(), StoreError> {
        if self.sync != Synchronous::Normal {
            let sql = match self.sync {
                Synchronous::Full => "PRAGMA synchronous = FULL",
                Synchronous::Normal => "PRAGMA synchronous = NORMAL",
            };
            conn.prepare_cached(sql)?.execute([])?;
        }
        Ok(())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (the transaction
        // rolls back on drop), so a poisoned lock is safe to keep using.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
