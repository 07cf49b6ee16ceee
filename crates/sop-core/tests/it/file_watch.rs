//! Watch roots of globs, and debouncing a file's changes into one event (tables, time
//! passed in).

use std::path::{Path, PathBuf};

use sop_core::file_watch::{watch_root, Debouncer};
use sop_core::FileEvent::{Create, Delete, Modify};

#[test]
fn a_glob_is_watched_from_its_fixed_directories() {
    let cases = [
        ("releases/*.tar.gz", "releases", false),
        ("releases/**/*.csv", "releases", true),
        ("/job/inbox/*.tar.gz", "/job/inbox", false),
        ("/job/*/in/*.csv", "/job", true),
        ("inbox/report.csv", "inbox", false),
        ("*.csv", "", false),
        ("/*.csv", "/", false),
    ];
    for (pattern, root, deeper) in cases {
        assert_eq!(
            watch_root(pattern),
            (PathBuf::from(root), deeper),
            "{pattern}"
        );
    }
}

#[test]
fn a_burst_of_changes_is_one_event_once_the_file_is_quiet() {
    let f = Path::new("/in/a.csv");
    let cases = [
        (
            &[(Create, 0), (Modify, 100), (Modify, 300)][..],
            Some(Create),
        ),
        (&[(Modify, 0), (Modify, 200)][..], Some(Modify)),
        (&[(Modify, 0), (Delete, 100)][..], Some(Delete)),
        (&[(Create, 0), (Modify, 50), (Delete, 100)][..], None),
        (&[(Delete, 0), (Create, 100)][..], Some(Modify)),
    ];
    for (changes, want) in cases {
        let mut d = Debouncer::new(500);
        for &(event, at) in changes {
            d.observe(f, event, at);
        }
        let last = changes.last().map_or(0, |c| c.1);
        assert!(d.due(last + 499).is_empty(), "{changes:?}: not quiet yet");
        let got: Vec<_> = d.due(last + 500).into_iter().map(|(_, e)| e).collect();
        assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{changes:?}");
        assert!(d.is_idle());
    }
    // Files are told apart; each waits for its own quiet.
    let mut d = Debouncer::new(500);
    d.observe(Path::new("/in/a.csv"), Create, 0);
    d.observe(Path::new("/in/b.csv"), Create, 400);
    assert_eq!(d.due(600), [(PathBuf::from("/in/a.csv"), Create)]);
    assert_eq!(d.due(900), [(PathBuf::from("/in/b.csv"), Create)]);
}
