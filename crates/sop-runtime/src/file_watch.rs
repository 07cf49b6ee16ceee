//! File-watch triggers (SPEC §6) in `sop serve`: a thread that watches the directories
//! of every SOP's `file_watch` globs (inotify, through the `notify` crate), debounces each
//! file's changes (`sop_core::file_watch`) and runs the SOP once per file event, with
//! `file_path`, `file_name` and `file_event`. The SOPs and their triggers are looked at
//! again every second, so a new or changed trigger is watched without a restart.
//!
//! Not seen: changes made while no daemon runs, or before the trigger's directory was
//! watched (up to a second after the daemon starts, the trigger appears or the directory
//! is made); under a recursive watch, files made in a new subdirectory before its own
//! watch is added, and the files of a directory moved in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use globset::{GlobBuilder, GlobMatcher};
use notify::event::{CreateKind, EventKind, ModifyKind, RemoveKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use sop_core::file_watch::{watch_root, Debouncer};
use sop_core::run::{Millis, TriggerInfo};
use sop_core::{FileEvent, Trigger};

use crate::command::{pick_sops, FireOutcome};
use crate::ops::Served;

/// One `file_watch` trigger being served.
struct Watched {
    matcher: GlobMatcher,
    events: Vec<FileEvent>,
    debounce_ms: u64,
    debouncer: Debouncer,
}

/// (SOP, trigger index) → its state.
type Triggers = BTreeMap<(String, usize), Watched>;

/// The file watcher of `sop serve`.
pub struct FileWatcher {
    served: Served,
    stopped: Mutex<bool>,
}

impl FileWatcher {
    pub fn new(served: Served) -> FileWatcher {
        FileWatcher {
            served,
            stopped: Mutex::new(false),
        }
    }

    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs until [`FileWatcher::stop`] (seen within 100 ms).
    pub fn run(&self) {
        let (tx, rx) = channel();
        let mut watcher = match notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("file watching is off: {e}");
                return;
            }
        };
        let mut triggers = Triggers::new();
        // The watched directories, recursively or not.
        let mut roots: BTreeMap<PathBuf, bool> = BTreeMap::new();
        // Quiet is measured on a clock that does not jump.
        let started = Instant::now();
        let clock = || Millis::try_from(started.elapsed().as_millis()).unwrap_or(Millis::MAX);
        let mut looked = Instant::now().checked_sub(Duration::from_secs(2));
        while !self.is_stopped() {
            if looked.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                looked = Some(Instant::now());
                self.look(&mut watcher, &mut triggers, &mut roots);
            }
            take_changes(&rx, &mut triggers, clock());
            self.fire_due(&mut triggers, clock());
        }
    }

    /// The triggers as the SOP files say now; their directories watched.
    fn look(
        &self,
        watcher: &mut RecommendedWatcher,
        triggers: &mut Triggers,
        roots: &mut BTreeMap<PathBuf, bool>,
    ) {
        let has_watch = |sop: &sop_core::Sop| {
            sop.triggers
                .iter()
                .any(|t| matches!(t, Trigger::FileWatch { .. }))
                .then_some(())
        };
        let Ok((sops, _)) = pick_sops(&self.served.ops(), has_watch) else {
            return;
        };
        // Each directory once, recursively if any trigger needs it so.
        let mut wanted: BTreeMap<PathBuf, bool> = BTreeMap::new();
        let mut now_watched = Triggers::new();
        for (sop, ()) in sops {
            for (i, trigger) in sop.triggers.iter().enumerate() {
                let Trigger::FileWatch {
                    path,
                    events,
                    debounce_ms,
                } = trigger
                else {
                    continue;
                };
                // `*` stays within a directory, as the SOP's validation says.
                let pattern = self.absolute(path, true);
                let Ok(glob) = GlobBuilder::new(&pattern).literal_separator(true).build() else {
                    continue;
                };
                let (root, deeper) = watch_root(&self.absolute(path, false));
                *wanted.entry(root).or_default() |= deeper;
                let key = (sop.name.clone(), i);
                // Kept (with what it has pending) unless the trigger changed.
                let kept = triggers.remove(&key).filter(|w| {
                    w.matcher.glob().glob() == glob.glob()
                        && &w.events == events
                        && w.debounce_ms == *debounce_ms
                });
                now_watched.insert(
                    key,
                    kept.unwrap_or_else(|| Watched {
                        matcher: glob.compile_matcher(),
                        events: events.clone(),
                        debounce_ms: *debounce_ms,
                        debouncer: Debouncer::new(*debounce_ms),
                    }),
                );
            }
        }
        *triggers = now_watched;
        // A watched directory removed (and maybe made again) lost its watch; one that does
        // not exist yet is watched once it does.
        let all_there = roots.keys().all(|r| r.is_dir());
        let wanted: BTreeMap<PathBuf, bool> =
            wanted.into_iter().filter(|(r, _)| r.is_dir()).collect();
        if all_there && wanted == *roots {
            return;
        }
        // A nested directory's watch goes with its parent's: all again, from scratch.
        for root in roots.keys() {
            let _ = watcher.unwatch(root);
        }
        roots.clear();
        for (root, deeper) in wanted {
            let mode = if deeper {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            match watcher.watch(&root, mode) {
                Ok(()) => {
                    roots.insert(root, deeper);
                }
                Err(e) => tracing::warn!("file watch: cannot watch `{}`: {e}", root.display()),
            }
        }
    }

    /// Runs the SOPs of the files that became quiet: once per SOP and file event, even
    /// when several of its triggers match the file.
    fn fire_due(&self, triggers: &mut Triggers, at: Millis) {
        let mut queued = false;
        let mut done: BTreeSet<(String, PathBuf)> = BTreeSet::new();
        for ((sop_name, _), w) in triggers.iter_mut() {
            for (path, event) in w.debouncer.due(at) {
                // A burst the trigger does not want (a delete after changes it ignores).
                if !w.events.contains(&event) || !done.insert((sop_name.clone(), path.clone())) {
                    continue;
                }
                let Ok((sop, _)) = crate::ops::load_sop(&self.served.home, sop_name) else {
                    continue;
                };
                let vars = BTreeMap::from([
                    ("file_path".to_string(), path.to_string_lossy().into_owned()),
                    (
                        "file_name".to_string(),
                        path.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    ),
                    ("file_event".to_string(), event_name(event).to_string()),
                ]);
                let trigger = TriggerInfo {
                    kind: "file_watch".to_string(),
                    by: "file_watch".to_string(),
                };
                let outcome = self.served.ops().fire(&sop, vars, trigger, None);
                queued |= matches!(outcome, FireOutcome::Queued(_));
                tracing::info!(
                    sop = %sop_name,
                    file = %path.display(),
                    event = event_name(event),
                    "file watch fired: {outcome:?}"
                );
            }
        }
        if queued {
            (self.served.wake)();
        }
    }

    /// A glob relative to the home made absolute; `escaped`: the home's own path as a glob
    /// (a `[` in it is a character, not a class), else as a path (where a watch goes).
    fn absolute(&self, pattern: &str, escaped: bool) -> String {
        if Path::new(pattern).is_absolute() {
            return pattern.to_string();
        }
        let home = self.served.home.root().to_string_lossy();
        let home = if escaped {
            globset::escape(&home)
        } else {
            home.into_owned()
        };
        format!("{}/{pattern}", home.trim_end_matches('/'))
    }
}

/// Changes that arrived (waiting up to 100 ms for the first), fed to the triggers whose
/// glob matches. Every change counts for the quiet (a file still being written is not
/// reported as created yet); which event is wanted is decided when it is quiet.
fn take_changes(rx: &Receiver<notify::Result<notify::Event>>, triggers: &mut Triggers, at: Millis) {
    let mut next = rx.recv_timeout(Duration::from_millis(100));
    loop {
        match next {
            Ok(Ok(event)) => {
                if let Some(kind) = file_event(event.kind) {
                    for path in &event.paths {
                        for w in triggers.values_mut().filter(|w| w.matcher.is_match(path)) {
                            w.debouncer.observe(path, kind, at);
                        }
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!("file watch: {e}"),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
        }
        next = rx.try_recv().map_err(|_| RecvTimeoutError::Timeout);
    }
}

/// The file event a notification is, if any: a file moved in is created, moved out
/// deleted; directories are not files.
fn file_event(kind: EventKind) -> Option<FileEvent> {
    match kind {
        EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder) => None,
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
            Some(FileEvent::Create)
        }
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
            Some(FileEvent::Delete)
        }
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => Some(FileEvent::Modify),
        _ => None,
    }
}

fn event_name(event: FileEvent) -> &'static str {
    match event {
        FileEvent::Create => "create",
        FileEvent::Modify => "modify",
        FileEvent::Delete => "delete",
    }
}
