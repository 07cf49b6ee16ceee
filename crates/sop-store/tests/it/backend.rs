//! The backends a story runs against. Each story gets a fresh, empty store.

use sop_store::{SqliteStore, Store, Synchronous};

/// A fresh store and whatever keeps it alive (a temp directory for `SQLite`).
pub struct Fresh {
    pub store: Box<dyn Store>,
    _keep: Option<tempfile::TempDir>,
}

/// A new `SQLite` store in its own temp directory.
pub fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("sop.db"), Synchronous::Full).expect("open");
    Fresh {
        store: Box::new(store),
        _keep: Some(dir),
    }
}

/// Runs `story` against every backend available here: `SQLite` always; `PostgreSQL` when
/// `SOP_TEST_DATABASE_URL` is set, once sop-store has that implementation.
pub fn each_backend(story: fn(&dyn Store)) {
    let fresh = sqlite();
    story(&*fresh.store);
    if std::env::var_os("SOP_TEST_DATABASE_URL").is_some() {
        // Plug the PostgreSQL store in here: a fresh schema per story, then
        // `story(&*postgres_store)`.
        eprintln!(
            "note: SOP_TEST_DATABASE_URL is set but sop-store has no PostgreSQL store yet; ran SQLite only"
        );
    }
}
