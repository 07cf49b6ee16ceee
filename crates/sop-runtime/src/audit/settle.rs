//! Group durability for the final audit files of the runs `sop serve` ends.
//!
//! Syncing each ended run's file (its data, then its directory) cost two device flushes
//! per run; on a virtual disk each flush also costs CPU (~0.1 ms here), which draining a
//! queue pays for every run. Instead, a run's final rewrite is written and exchanged
//! without syncs ([`super::write_settling`]), and the [`Settler`] makes a whole group
//! durable at once with one `syncfs` per file system holding its files, at most
//! `audit_group_ms` after the first of them.
//!
//! Nothing is reported durable that is not: the store, where every transition is
//! committed durably, stays the truth, and each `sop serve` keeps a *settle mark* in it, an
//! event `seq`: a run it ended whose events are all at or before the mark has a durable
//! audit file. A process that stops cleanly settles and removes its mark; the mark of one
//! that died (a crash, a power loss) stays, and the next `sop serve` rewrites, durably, the
//! audit file of every ended run with an event after it
//! (`recovery::repair_unsettled_audit`). Event `seq`s only grow (events are never
//! removed), whatever the wall clock does.
//!
//! The mark only passes a run once its file is synced: whoever commits a change that may
//! end a run registers it first ([`Settler::register`]), with the newest `seq` known
//! then (every event of that commit comes after it), and the run stays open, holding the
//! mark at that floor, until a sync taken after its final rewrite has finished.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sop_store::{Owner, Store, StoreError};

use crate::home::Home;

/// Makes ended runs' audit files durable in groups (see the module).
pub struct Settler {
    store: std::sync::Arc<dyn Store>,
    owner: Owner,
    home: Home,
    /// How long a group gathers after its first file.
    window: Duration,
    state: Mutex<State>,
    bell: Condvar,
}

#[derive(Default)]
struct State {
    /// Runs whose last commit may be under way, or whose final file is not synced yet.
    open: HashMap<String, Open>,
    /// Final files written since the group began, to settle.
    written: Vec<Written>,
    /// The newest event `seq` read before the last group was taken.
    floor: i64,
    /// The mark last committed.
    mark: Option<i64>,
    stop: bool,
    /// Settled for good (the mark removed, or left for the next start): files written from
    /// now on are not taken ([`Settler::written`] says so).
    closed: bool,
}

/// A registered run.
struct Open {
    /// The newest event `seq` known when it was first registered: every event of its
    /// ending comes after it.
    floor: i64,
    /// Registrations not dropped yet (a driver's and an operation's may overlap).
    holders: u32,
    /// Its final file is written ([`Settler::written`]): it stays until that is durable.
    written: bool,
}

/// A final file to settle.
#[derive(Clone)]
struct Written {
    run: String,
    /// The spare the rewrite left beside the file (for the pool once synced).
    spare: Option<PathBuf>,
    /// A sync of its file system failed since it was written: write-back errors are
    /// reported once, so a later sync proves nothing; only a durable rewrite settles it.
    rewrite: bool,
}

/// The settle mark after a sync of everything written before the newest event was `seq`:
/// that `seq`, unless a run still open has a lower floor (its ending may have events after
/// it, and its file is not known to be synced).
pub(crate) fn mark(seq: i64, open_floors: impl Iterator<Item = i64>) -> i64 {
    open_floors.fold(seq, i64::min)
}

/// A run registered with a [`Settler`] before a commit that may end it
/// ([`Settler::register`]): dropped, it is unregistered, unless kept (its final file was
/// handed over, or is not durable) or dropped in a panic (the commit may have ended it).
pub struct Registration<'s> {
    settler: &'s Settler,
    run: String,
    armed: bool,
}

impl Registration<'_> {
    /// The run stays registered: the mark holds before it until it is settled.
    pub fn keep(&mut self) {
        self.armed = false;
    }

    pub fn settler(&self) -> &Settler {
        self.settler
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if self.armed && !std::thread::panicking() {
            let mut state = self.settler.state();
            if let Some(open) = state.open.get_mut(&self.run) {
                open.holders = open.holders.saturating_sub(1);
                if open.holders == 0 && !open.written {
                    state.open.remove(&self.run);
                }
            }
        }
    }
}

impl Settler {
    pub fn new(
        store: std::sync::Arc<dyn Store>,
        owner: Owner,
        home: Home,
        window: Duration,
    ) -> Self {
        Settler {
            store,
            owner,
            home,
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
        let seq = self.store.last_event_seq()?;
        self.store.set_settle_mark(self.owner, Some(seq))?;
        let mut state = self.state();
        state.floor = seq;
        state.mark = Some(seq);
        Ok(())
    }

    /// Registers run `id` before a commit that may end it.
    pub fn register(&self, id: &str) -> Registration<'_> {
        let mut state = self.state();
        let floor = state.floor;
        state
            .open
            .entry(id.to_string())
            .or_insert(Open {
                floor,
                holders: 0,
                written: false,
            })
            .holders += 1;
        Registration {
            settler: self,
            run: id.to_string(),
            armed: true,
        }
    }

    /// Run `id`'s final file was rewritten durably (not through this settler): nothing
    /// left to settle for it.
    pub fn rewritten_durably(&self, id: &str) {
        self.state().open.remove(id);
    }

    /// Run `id` (registered) ended, and its final file is written, not synced; `spare`: the
    /// spare it left beside the file, for the pool once synced. `false`: the settler has
    /// closed (the daemon stops): the caller makes the file durable itself.
    #[must_use]
    pub fn written(&self, id: &str, spare: Option<PathBuf>) -> bool {
        let mut state = self.state();
        if state.closed {
            return false;
        }
        let first = state.written.is_empty();
        // Not registered (a durable rewrite by another holder cleared it): its events are
        // not known to be above any floor, so it holds the mark back until it is synced.
        state
            .open
            .entry(id.to_string())
            .or_insert(Open {
                floor: 0,
                holders: 0,
                written: true,
            })
            .written = true;
        state.written.push(Written {
            run: id.to_string(),
            spare,
            rewrite: false,
        });
        drop(state);
        if first {
            self.bell.notify_all();
        }
        true
    }

    /// Settles groups until [`Settler::stop`], then the last one; then removes the mark if
    /// every run this process ended is settled.
    pub fn run(&self) {
        loop {
            let mut state = self.state();
            while state.written.is_empty() && !state.stop {
                state = self
                    .bell
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            // Let the group gather (a stop cuts it short). Also the pause before files that
            // could not be settled are tried again.
            if !state.stop {
                state = self
                    .bell
                    .wait_timeout_while(state, self.window, |s| !s.stop)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let stopping = state.stop;
            drop(state);
            let progressed = self.settle();
            if stopping {
                let left = self.state().written.len();
                if left == 0 {
                    self.finish();
                    return;
                }
                if !progressed {
                    self.state().closed = true;
                    tracing::warn!("audit: {left} ended runs' audit files could not be made durable; the next `sop serve` rewrites them");
                    return;
                }
            }
        }
    }

    /// Makes the files written so far durable; then their spares go to the pool, and the
    /// mark moves past them. `false`: nothing was settled.
    pub(crate) fn settle(&self) -> bool {
        // Read before the group is taken: every run registered from now on has events
        // after `seq`.
        let seq = match self.store.last_event_seq() {
            Ok(seq) => seq,
            Err(e) => {
                tracing::warn!("audit: cannot read the event ledger to settle: {e}");
                return false;
            }
        };
        let group = {
            let mut state = self.state();
            state.floor = state.floor.max(seq);
            std::mem::take(&mut state.written)
        };
        if group.is_empty() {
            return false;
        }
        let (synced, failed) = self.make_durable(&group);
        let through = {
            let mut state = self.state();
            for w in &synced {
                state.open.remove(&w.run);
            }
            // The others are tried again with the next group, by durable rewrites only.
            state.written.extend(failed.iter().map(|w| Written {
                rewrite: true,
                ..(*w).clone()
            }));
            let through = mark(seq, state.open.values().map(|o| o.floor));
            (state.mark.is_none_or(|m| m < through)).then_some(through)
        };
        // The directory names the new files on disk now: the spares left may be reused.
        for spare in synced.iter().filter_map(|w| w.spare.as_deref()) {
            if let Some(dir) = spare.parent() {
                super::give_back(spare, dir);
            }
        }
        if let Some(through) = through {
            match self.store.set_settle_mark(self.owner, Some(through)) {
                Ok(()) => self.state().mark = Some(through),
                Err(e) => tracing::warn!("audit: cannot move the settle mark: {e}"),
            }
        }
        !synced.is_empty()
    }

    /// Syncs the file systems of `group`'s files, or, where that failed before or fails now,
    /// rewrites each file durably. Returns the files now durable and the others.
    fn make_durable<'g>(&self, group: &'g [Written]) -> (Vec<&'g Written>, Vec<&'g Written>) {
        // The directories of the files: those of their spares (a spare is kept beside its
        // file), or the home's for a run without one.
        let logs = self.home.root().join("logs");
        let (to_sync, mut to_rewrite): (Vec<&Written>, Vec<&Written>) =
            group.iter().partition(|w| !w.rewrite);
        let dirs: Vec<&Path> = to_sync
            .iter()
            .map(|w| w.spare.as_deref().and_then(Path::parent).unwrap_or(&logs))
            .collect();
        let mut synced = Vec::new();
        if !to_sync.is_empty() {
            match sync_file_systems(&dirs) {
                Ok(()) => synced = to_sync,
                Err(e) => {
                    tracing::error!(
                        "audit: cannot sync {} audit files ({e}); rewriting each durably",
                        to_sync.len()
                    );
                    to_rewrite.extend(to_sync);
                }
            }
        }
        let mut failed = Vec::new();
        for w in to_rewrite {
            match super::write(&*self.store, &self.home, &w.run) {
                Ok(()) => synced.push(w),
                Err(e) => {
                    // Logged once per run; it is tried again with each group.
                    if !w.rewrite {
                        tracing::error!("run {}: cannot rewrite its audit file: {e}", w.run);
                    }
                    failed.push(w);
                }
            }
        }
        (synced, failed)
    }

    /// A clean stop: with every run this process ended settled, its mark goes. (It stays
    /// after a failure: the next start then rewrites the files it does not cover.)
    fn finish(&self) {
        let open = {
            let mut state = self.state();
            state.closed = true;
            state.open.len()
        };
        if open > 0 {
            tracing::warn!("audit: {open} ended runs' audit files are not known to be durable; the next `sop serve` rewrites them");
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

    /// Gives up this process's mark (its settler never ran): files are synced one by one.
    pub fn abandon(&self) {
        if let Err(e) = self.store.set_settle_mark(self.owner, None) {
            tracing::warn!("audit: cannot remove the settle mark: {e}");
        }
    }
}

/// One `syncfs` per file system holding one of `dirs` (an audit directory may be a mount or
/// a symbolic link of its own).
fn sync_file_systems(dirs: &[&Path]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let mut devices = HashSet::new();
    for dir in dirs {
        let dir = File::open(dir)?;
        if devices.insert(dir.metadata()?.dev()) {
            nix::unistd::syncfs(dir.as_raw_fd()).map_err(std::io::Error::from)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use sop_core::run;
    use sop_store::{Owner, SqliteStore, Store, Synchronous};

    use super::{mark, Settler};
    use crate::audit::fixtures::{moving, T0};
    use crate::audit::{write_settling, write_with, Sync};
    use crate::home::Home;

    /// Runs `a`, `b`, `c` moving, with their files written: what a daemon's drivers hold.
    fn home_with_runs(dir: &Path) -> (Home, Arc<SqliteStore>) {
        let home = Home::new(dir);
        std::fs::create_dir_all(home.state_dir()).expect("state dir");
        let store =
            Arc::new(SqliteStore::open(&home.db_path(), Synchronous::Normal).expect("store"));
        for id in ["a", "b", "c"] {
            let rel = format!("logs/sop/deploy/{id}.json");
            store
                .create_run(moving(id, 2), &rel, None, T0)
                .expect("created");
            write_with(&*store, &home, id, Sync::Deferred).expect("written");
        }
        (home, store)
    }

    /// [`home_with_runs`], and a settler for it whose groups never close on their own.
    fn settler_for(dir: &Path) -> (Home, Arc<SqliteStore>, Settler) {
        let (home, store) = home_with_runs(dir);
        let me = Owner {
            pid: 1,
            start_time: 1,
        };
        let settler = Settler::new(store.clone(), me, home.clone(), LONG);
        (home, store, settler)
    }

    /// A group window no test waits out (`Duration::from_hours` is newer than the MSRV).
    #[allow(clippy::duration_suboptimal_units)]
    const LONG: Duration = Duration::from_secs(3600);

    /// Commits the end of run `id` (as a driver would, after registering it).
    fn end(store: &SqliteStore, id: &str) {
        store
            .update_run(id, T0 + 1, &mut |r, ev| {
                run::halt(r, "done", T0 + 1, ev);
                Ok(())
            })
            .expect("commit")
            .expect("ended");
    }

    #[test]
    fn the_mark_passes_a_run_only_once_its_final_file_is_synced() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let (home, store, settler) = settler_for(tmp.path());
        let mark_now = || store.settle_marks().expect("marks").first().map(|m| m.1);
        let end = |id: &str| {
            settler.register(id).keep();
            end(&store, id);
        };
        let pooled = home.root().join("logs/sop/deploy/.spare");
        settler.begin().expect("mark");
        let start = mark_now().expect("a mark");
        assert_eq!(start, store.last_event_seq().expect("seq"));

        // `a`'s ending is committed, its file not handed over yet; `b`'s is written.
        end("a");
        end("b");
        let spare = write_settling(&*store, &home, "b").expect("b written");
        let spare = spare.expect("an ended run leaves its spare");
        assert!(spare.exists());
        assert!(settler.written("b", Some(spare.clone())));
        settler.settle();
        // `a` holds the mark where it was registered: a crash now rewrites its file.
        assert_eq!(mark_now(), Some(start));
        assert_eq!(store.ended_since(start).expect("ended"), ["a", "b"]);
        // `b`'s file is synced: its spare went to the pool.
        assert!(!spare.exists());
        assert!(pooled.exists());

        // `a`'s file written: the next group passes both.
        let spare = write_settling(&*store, &home, "a").expect("a written");
        assert!(settler.written("a", spare));
        settler.settle();
        let through = mark_now().expect("a mark");
        assert_eq!(through, store.last_event_seq().expect("seq"));
        assert!(store.ended_since(through).expect("ended").is_empty());

        // A registered run the commit did not end holds nothing; the thread settles `c`
        // as it stops, and a clean stop removes the mark.
        // Registered, not ended: dropped, it is unregistered; registered twice (a driver and
        // an operation), only when both are dropped.
        let driver = settler.register("c");
        let operation = settler.register("c");
        drop(driver);
        assert!(settler.state().open.contains_key("c"));
        drop(operation);
        assert!(!settler.state().open.contains_key("c"));
        end("c");
        let spare = write_settling(&*store, &home, "c").expect("c written");
        assert!(settler.written("c", spare));
        std::thread::scope(|s| {
            s.spawn(|| settler.run());
            settler.stop();
        });
        assert_eq!(mark_now(), None);
        let doc: serde_json::Value = serde_json::from_slice(
            &std::fs::read(home.root().join("logs/sop/deploy/c.json")).expect("file"),
        )
        .expect("json");
        assert_eq!(doc["status"], "failure");
    }

    #[test]
    fn a_group_that_cannot_be_synced_is_rewritten_durably_file_by_file() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let (home, store, settler) = settler_for(tmp.path());
        settler.begin().expect("mark");
        settler.register("a").keep();
        end(&store, "a");
        let spare = write_settling(&*store, &home, "a").expect("a written");
        assert!(settler.written("a", spare));
        // Its directory is gone before the group syncs (an operator cleaning up, a failing
        // disk): there is nothing to sync it through.
        let logs = home.root().join("logs");
        std::fs::remove_dir_all(&logs).expect("removed");
        assert!(settler.settle());
        let doc: serde_json::Value = serde_json::from_slice(
            &std::fs::read(logs.join("sop/deploy/a.json")).expect("rewritten"),
        )
        .expect("json");
        assert_eq!(doc["status"], "failure");
        let mark = store.settle_marks().expect("marks")[0].1;
        assert_eq!(mark, store.last_event_seq().expect("seq"));
    }

    #[test]
    fn the_mark_stays_at_the_floor_of_every_run_still_open() {
        let cases: &[(i64, &[i64], i64)] = &[
            // nothing open: the newest event before the group was taken
            (1_000, &[], 1_000),
            // a run registered before that and not in the group holds it at its floor
            (1_000, &[900], 900),
            (1_000, &[950, 900, 990], 900),
            // runs registered since have the newest floor and do not hold it back
            (1_000, &[1_000, 1_000], 1_000),
        ];
        for (seq, open, want) in cases {
            assert_eq!(mark(*seq, open.iter().copied()), *want, "{seq} {open:?}");
        }
    }
}
