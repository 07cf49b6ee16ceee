//! File-watch triggers (SPEC §6): where a trigger's glob can be watched from, and the
//! debouncing of a file's changes into one event, reported once the file has been quiet
//! for the trigger's `debounce_ms`. Pure: changes and the time come in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::model::FileEvent;
use crate::run::Millis;

/// The directory a glob's matches all lie under: its leading components without glob
/// characters (`releases/**/*.csv` → `releases`; `/job/inbox/*.tar.gz` → `/job/inbox`),
/// and whether a match may lie deeper than directly in it.
pub fn watch_root(pattern: &str) -> (PathBuf, bool) {
    let is_glob = |c: &str| c.contains(['*', '?', '[', '{']);
    let parts: Vec<&str> = pattern.split('/').collect();
    let fixed = parts.iter().take_while(|c| !is_glob(c)).count();
    // The last component names the files even when it has no glob characters.
    let fixed = fixed.min(parts.len().saturating_sub(1));
    let root = parts[..fixed].join("/");
    let root = if root.is_empty() && pattern.starts_with('/') {
        "/".to_string()
    } else {
        root
    };
    let deeper = parts.len() - fixed > 1 || parts[fixed..].iter().any(|c| c.contains("**"));
    (PathBuf::from(root), deeper)
}

/// One file's changes since it was last quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Burst {
    first: FileEvent,
    last: FileEvent,
    last_at: Millis,
}

/// Files changing, each reported once it has been quiet for `quiet_ms`.
#[derive(Debug, Clone)]
pub struct Debouncer {
    quiet_ms: Millis,
    pending: BTreeMap<PathBuf, Burst>,
}

impl Debouncer {
    pub fn new(quiet_ms: u64) -> Debouncer {
        Debouncer {
            quiet_ms: Millis::try_from(quiet_ms).unwrap_or(Millis::MAX),
            pending: BTreeMap::new(),
        }
    }

    /// A change of `path` seen at `now`.
    pub fn observe(&mut self, path: &Path, event: FileEvent, now: Millis) {
        self.pending
            .entry(path.to_path_buf())
            .and_modify(|b| {
                b.last = event;
                b.last_at = now;
            })
            .or_insert(Burst {
                first: event,
                last: event,
                last_at: now,
            });
    }

    /// The files quiet since `quiet_ms` before `now`, each with its one event: `delete` if
    /// the burst ended with the file gone (nothing if it was also created in it: the file
    /// came and went), else `create` if it began with the file's creation, else `modify`.
    pub fn due(&mut self, now: Millis) -> Vec<(PathBuf, FileEvent)> {
        let quiet: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, b)| now - b.last_at >= self.quiet_ms)
            .map(|(p, _)| p.clone())
            .collect();
        let mut out = Vec::new();
        for path in quiet {
            let Some(b) = self.pending.remove(&path) else {
                continue;
            };
            let event = match (b.first, b.last) {
                (FileEvent::Create, FileEvent::Delete) => continue,
                (_, FileEvent::Delete) => FileEvent::Delete,
                (FileEvent::Create, _) => FileEvent::Create,
                _ => FileEvent::Modify,
            };
            out.push((path, event));
        }
        out
    }

    /// Whether changes wait to be reported.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }
}
