//! Store errors.

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at `{path}`: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("store query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("run `{0}` does not exist")]
    NoSuchRun(String),
    #[error("stored run `{id}` is unreadable: {source}")]
    Corrupt {
        id: String,
        source: serde_json::Error,
    },
    #[error("stored run `{id}` refers to SOP snapshot `{hash}`, which the store lacks")]
    MissingSnapshot { id: String, hash: String },
    #[error("stored run `{id}` has a step record in an unknown place: {slot}")]
    BadSlot { id: String, slot: String },
    #[error("committing new runs failed: {0}")]
    Commit(String),
    #[error("cannot open the store's write-ahead log `{path}`: {source}")]
    OpenLog {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the store's write-ahead log could not be synced to disk ({0}): what was written since \
         may not be on disk, so this sop takes no more requests; check the disk, then stop \
         every sop using this home and start them again"
    )]
    Unsynced(String),
    #[error("the store was written by a newer sop (schema {found}, this sop knows {known})")]
    TooNew { found: i64, known: i64 },
}
