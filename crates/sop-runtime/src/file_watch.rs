//! File-watch triggers (SPEC §6) in `sop serve`: a thread that watches the directories
//! of every SOP's `file_watch` globs (inotify, through the `notify` crate), debounces each
//! file's changes (`sop_core::file_watch`) and runs the SOP once per file event, with
//! `file_path`, `file_name` and `file_event`. Changes made while no daemon runs are not
//! seen. The SOPs and their triggers are looked at again every second, so a new or
//! changed trigger is triggers without a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use globset::{Glob, GlobMatcher};
use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use sop_core::config::RunnerConfig;
use sop_core::file_watch::{watch_root, Debouncer};
use sop_core::run::TriggerInfo;
use sop_core::{FileEvent, Trigger};
use sop_store::Store;

use crate::clock::now;
use crate::command::{pick_sops, FireOutcome};
use crate::home::Home;
use crate::ops::Ops;

/// One `file_watch` trigger being served.
struct Watched {
    matcher: GlobMatcher,
    events: Vec<FileEvent>,
    debouncer: Debouncer,
}

/// The file watcher of `sop serve`.
pub struct FileWatcher {
    store: Arc<dyn Store>,
    home: Home,
    config: RunnerConfig,
    wake: Arc<dyn Fn() + Send + Sync>,
    stopped: Mutex<bool>,
}

impl FileWatcher {
    pub fn new(
        store: Arc<dyn Store>,
        home: Home,
        config: RunnerConfig,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> FileWatcher {
        FileWatcher {
            store,
            home,
            config,
            wake,
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
        // (SOP, trigger index) → its state; the triggers directories.
        let mut triggers: BTreeMap<(String, usize), Watched> = BTreeMap::new();
        let mut roots: BTreeSet<(PathBuf, bool)> = BTreeSet::new();
        let mut looked = Instant::now().checked_sub(Duration::from_secs(2));
        while !self.is_stopped() {
            if looked.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                looked = Some(Instant::now());
                self.look(&mut watcher, &mut triggers, &mut roots);
            }
            take_changes(&rx, &mut triggers);
            self.fire_due(&mut triggers);
        }
    }

    /// The triggers as the SOP files say now; their directories triggers.
    fn look(
        &self,
        watcher: &mut RecommendedWatcher,
        triggers: &mut BTreeMap<(String, usize), Watched>,
        roots: &mut BTreeSet<(PathBuf, bool)>,
    ) {
        let has_watch = |sop: &sop_core::Sop| {
            sop.triggers
                .iter()
                .any(|t| matches!(t, Trigger::FileWatch { .. }))
                .then_some(())
        };
        let Ok((sops, _)) = pick_sops(&self.ops(), has_watch) else {
            return;
        };
        let mut wanted_roots = BTreeSet::new();
        let mut now_watched = BTreeMap::new();
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
                let pattern = self.absolute(path);
                let Ok(glob) = Glob::new(&pattern.to_string_lossy()) else {
                    continue;
                };
                let (root, deeper) = watch_root(&pattern.to_string_lossy());
                wanted_roots.insert((root, deeper));
                let key = (sop.name.clone(), i);
                // Kept (with what it has pending) unless the trigger changed.
                let kept = triggers
                    .remove(&key)
                    .filter(|w| w.matcher.glob().glob() == glob.glob() && &w.events == events);
                now_watched.insert(
                    key,
                    kept.unwrap_or_else(|| Watched {
                        matcher: glob.compile_matcher(),
                        events: events.clone(),
                        debouncer: Debouncer::new(*debounce_ms),
                    }),
                );
            }
        }
        *triggers = now_watched;
        for (root, deeper) in roots.difference(&wanted_roots) {
            let _ = watcher.unwatch(root);
            tracing::debug!(
                "file watch: no longer watching `{}` ({deeper})",
                root.display()
            );
        }
        roots.retain(|r| wanted_roots.contains(r));
        for (root, deeper) in wanted_roots {
            if roots.contains(&(root.clone(), deeper)) {
                continue;
            }
            let mode = if deeper {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            // A directory that does not exist yet is tried again at the next look.
            if watcher.watch(&root, mode).is_ok() {
                roots.insert((root, deeper));
            }
        }
    }

    /// Runs the SOPs of the files that became quiet.
    fn fire_due(&self, triggers: &mut BTreeMap<(String, usize), Watched>) {
        let at = now();
        let mut queued = false;
        for ((sop_name, _), w) in triggers.iter_mut() {
            for (path, event) in w.debouncer.due(at) {
                // A burst the trigger does not want (a delete after changes it ignores).
                if !w.events.contains(&event) {
                    continue;
                }
                let ops = self.ops();
                let Ok((sop, _)) = crate::ops::load_sop(&self.home, sop_name) else {
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
                let outcome = ops.fire(&sop, vars, trigger, None);
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
            (self.wake)();
        }
    }

    fn ops(&self) -> Ops<'_> {
        Ops {
            store: &*self.store,
            home: &self.home,
            config: &self.config,
            served: true,
            settle: None,
        }
    }

    /// A glob relative to the home made absolute.
    fn absolute(&self, pattern: &str) -> PathBuf {
        let p = Path::new(pattern);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.home.root().join(p)
        }
    }
}

/// Changes that arrived (waiting up to 100 ms for the first), fed to the triggers
/// whose glob matches.
fn take_changes(
    rx: &Receiver<notify::Result<notify::Event>>,
    triggers: &mut BTreeMap<(String, usize), Watched>,
) {
    let mut next = rx.recv_timeout(Duration::from_millis(100));
    loop {
        match next {
            Ok(Ok(event)) => {
                if let Some(kind) = file_event(event.kind) {
                    let at = now();
                    for path in &event.paths {
                        // Every change counts for the quiet (a file still being written
                        // is not reported as created yet); which event is wanted is
                        // decided when it is quiet.
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
/// deleted.
fn file_event(kind: EventKind) -> Option<FileEvent> {
    match kind {
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
