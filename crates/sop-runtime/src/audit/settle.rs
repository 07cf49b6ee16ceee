//! Group durability for the final audit files of the runs `sop serve` ends.
//!
//! Syncing each ended run's file (its data, then its directory) cost two device flushes
//! per run; on a virtual disk each flush also costs CPU (~0.1 ms here), which draining a
//! queue pays for every run. Instead, a run's final rewrite is written and exchanged
//! without syncs ([`super::write_settling`]), and the [`Settler`] makes a whole group
//! durable at once with one `syncfs` (every file and directory of the file system), at
//! most `audit_group_ms` after the first of them.
//!
//! Nothing is reported durable that is not: the store, where every transition is
//! committed durably, stays the truth, and each `sop serve` keeps a *settle mark* in it:
//! every run it ended at or before the mark has a durable audit file. A process that
//! stops cleanly settles and removes its mark; the mark of one that died (a crash, a
//! power loss) stays, and the next `sop serve` rewrites, durably, the audit file of every
//! run that ended after it (`recovery::repair_unsettled_audit`).
//!
//! The mark is only moved past a run once its file is synced: a driver registers its run
//! ([`Settler::opening`]) before the commit that may end it, and the run stays open until
//! a sync that began after its final rewrite has finished.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sop_core::run::Millis;
use sop_store::{Owner, Store, StoreError};

use crate::clock::now;
use crate::home::Home;

/// Makes ended runs' audit files durable in groups (see the module).
pub struct Settler {
    store: Arc<dyn Store>,
    owner: Owner,
    /// Any directory on the file system of the audit files (the home): `syncfs` syncs that
    /// whole file system.
    root: PathBuf,
    /// How long a group gathers after its first file.
    window: Duration,
    state: Mutex<State>,
    bell: Condvar,
}

#[derive(Default)]
struct State {
    /// Runs whose last commit may be under way, or whose final file is not synced yet: when
    /// each was registered, and whether its final file is written.
    open: HashMap<String, (Millis, bool)>,
    /// Final rewrites made since the group began: the run and the spare it left.
    written: Vec<(String, Option<PathBuf>)>,
    /// The mark last committed.
    mark: Option<Millis>,
    stop: bool,
}

/// The settle mark after a sync that began at `synced_from`, given when each run still open
/// was registered: just before the sync began, and before every open run (a run ends no
/// earlier than it was registered, and the sync covers only files written before it began).
pub(crate) fn mark(synced_from: Millis, open: impl Iterator<Item = Millis>) -> Millis {
    open.fold(synced_from, Millis::min).saturating_sub(1)
}

impl Settler {
    pub fn new(store: Arc<dyn Store>, owner: Owner, home: &Home, window: Duration) -> Settler {
        Settler {
            store,
            owner,
            root: home.root().to_path_buf(),
            window,
            state: Mutex::new(State::default()),
            bell: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits this process's first mark: call before any run can end here.
    pub fn begin(&self) -> Result<(), StoreError> {
        let through = mark(now(), std::iter::empty());
        self.store.set_settle_mark(self.owner, Some(through))?;
        self.state().mark = Some(through);
        Ok(())
    }

    /// Before a commit that may end run `id`.
    pub fn opening(&self, id: &str) {
        let t = now();
        self.state()
            .open
            .entry(id.to_string())
            .or_insert((t, false));
    }

    /// The commit did not end run `id` (or wrote no final file): nothing to settle. A run
    /// whose final file is written stays until it is synced.
    pub fn closed(&self, id: &str) {
        let mut state = self.state();
        if state.open.get(id).is_some_and(|(_, written)| !written) {
            state.open.remove(id);
        }
    }

    /// Run `id` ended at `ended` and its final file is written, not synced; `spare`: the
    /// spare it left, for the pool once synced.
    pub fn written(&self, id: &str, ended: Option<Millis>, spare: Option<PathBuf>) {
        let mut state = self.state();
        let first = state.written.is_empty();
        let entry = state.open.entry(id.to_string()).or_insert((now(), true));
        // Held back by when it ended, too: a clock set back since it was registered cannot
        // let the mark pass it.
        entry.0 = ended.map_or(entry.0, |e| entry.0.min(e));
        entry.1 = true;
        state.written.push((id.to_string(), spare));
        drop(state);
        if first {
            self.bell.notify_all();
        }
    }

    /// Settles groups until [`Settler::stop`], then the last one; removes the mark when
    /// every run this process ended is settled.
    pub fn run(&self) {
        let dir = match File::open(&self.root) {
            Ok(dir) => dir,
            Err(e) => {
                // Nothing settles: the mark stays, and the next start rewrites the files.
                tracing::error!(
                    "audit: cannot open `{}` to sync audit files: {e}",
                    self.root.display()
                );
                return;
            }
        };
        loop {
            let mut state = self.state();
            while state.written.is_empty() && !state.stop {
                state = self
                    .bell
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if !state.stop {
                // Let the group gather (a stop cuts it short).
                state = self
                    .bell
                    .wait_timeout_while(state, self.window, |s| !s.stop)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let group = std::mem::take(&mut state.written);
            let stopping = state.stop;
            let from = now();
            drop(state);
            if !group.is_empty() {
                self.settle(&dir, group, from);
            }
            if stopping && self.state().written.is_empty() {
                self.finish();
                return;
            }
        }
    }

    /// Syncs the file system; then the group's spares go to the pool, and the mark moves.
    fn settle(&self, dir: &File, group: Vec<(String, Option<PathBuf>)>, from: Millis) {
        use std::os::fd::AsRawFd;
        if let Err(e) = nix::unistd::syncfs(dir.as_raw_fd()) {
            // Not settled: the runs stay open (the mark does not pass them), their spares
            // stay where they are; the next start rewrites their files.
            tracing::error!(
                "audit: cannot sync the audit files of {} ended runs: {e}",
                group.len()
            );
            return;
        }
        let mut state = self.state();
        for (id, spare) in group {
            state.open.remove(&id);
            if let Some(spare) = spare {
                if let Some(parent) = spare.parent() {
                    super::give_back(&spare, parent);
                }
            }
        }
        let through = mark(from, state.open.values().map(|(t, _)| *t));
        if state.mark.is_some_and(|m| m >= through) {
            return;
        }
        drop(state);
        match self.store.set_settle_mark(self.owner, Some(through)) {
            Ok(()) => self.state().mark = Some(through),
            Err(e) => tracing::warn!("audit: cannot move the settle mark: {e}"),
        }
    }

    /// A clean stop: with every run this process ended settled, its mark goes.
    fn finish(&self) {
        if !self.state().open.is_empty() {
            return;
        }
        if let Err(e) = self.store.set_settle_mark(self.owner, None) {
            tracing::warn!("audit: cannot remove the settle mark: {e}");
        }
    }

    /// Asks [`Settler::run`] to settle what is written and return. Call once no driver can
    /// end a run any more.
    pub fn stop(&self) {
        self.state().stop = true;
        self.bell.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::mark;

    #[test]
    fn the_mark_stays_before_every_run_still_open() {
        let cases: &[(i64, &[i64], i64)] = &[
            // nothing open: just before the sync began (a run may end in that millisecond
            // after the group was taken)
            (1_000, &[], 999),
            // a run registered before the sync began and not in its group
            (1_000, &[900], 899),
            (1_000, &[950, 900, 990], 899),
            // runs registered since the sync began do not hold it back further
            (1_000, &[1_000, 1_200], 999),
            (1_000, &[1_001], 999),
        ];
        for (from, open, want) in cases {
            assert_eq!(mark(*from, open.iter().copied()), *want, "{from} {open:?}");
        }
    }
}
