//! Reads SOP directories from disk and hands their bytes to `sop-core` (which does no IO).

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use sop_core::parse::MAX_FILE_BYTES;
use sop_core::{parse_sop, Diagnostic, Severity, Sop, SopFiles};

use crate::home::Home;

/// One SOP directory's result: the checked SOP (when it has no errors) and its diagnostics.
#[derive(Debug)]
pub struct Loaded {
    pub dir_name: String,
    pub sop: Option<Sop>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Reads at most `MAX_FILE_BYTES + 1` bytes: enough to tell the file is too large.
fn read_bounded(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Loads one SOP by directory name. Never fails: problems are diagnostics.
pub fn load_one(home: &Home, dir_name: &str) -> Loaded {
    let dir = home.sop_dir(dir_name);
    let toml_path = format!("sops/{dir_name}/SOP.toml");
    let md_path = format!("sops/{dir_name}/SOP.md");
    let mut diagnostics = Vec::new();
    let mut read = |path: &Path, shown: &str| match read_bounded(path) {
        Ok(b) => b,
        Err(e) => {
            diagnostics.push(Diagnostic::file(
                Severity::Error,
                shown,
                format!("cannot read the file: {e}"),
            ));
            None
        }
    };
    let toml = read(&dir.join("SOP.toml"), &toml_path);
    let md = read(&dir.join("SOP.md"), &md_path);
    if !diagnostics.is_empty() {
        return Loaded {
            dir_name: dir_name.to_string(),
            sop: None,
            diagnostics,
        };
    }
    let files = SopFiles {
        dir_name,
        toml_path: &toml_path,
        toml: toml.as_deref(),
        md_path: &md_path,
        md: md.as_deref(),
    };
    let (sop, diagnostics) = parse_sop(&files);
    Loaded {
        dir_name: dir_name.to_string(),
        sop,
        diagnostics,
    }
}

/// Every directory under `sops/`, sorted by name. A missing `sops/` is an empty list.
pub fn sop_dirs(home: &Home) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    match fs::read_dir(home.sops_dir()) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    names.sort();
    Ok(names)
}

/// Loads every SOP of the home; one bad SOP never stops the others from loading.
pub fn load_all(home: &Home) -> std::io::Result<Vec<Loaded>> {
    Ok(sop_dirs(home)?.iter().map(|d| load_one(home, d)).collect())
}

/// What tells a file's bytes apart without reading them. A file rewritten within one
/// timestamp tick to the same length is not told apart: [`load_shared`] trusts a stamp
/// alone only once the file is older than [`SETTLED`], and compares bytes before that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

/// A stamp younger than this may hide a same-tick rewrite (as git's "racily clean").
const SETTLED: Duration = Duration::from_secs(2);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = fs::metadata(path).ok()?;
    let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    Some(Stamp {
        len: m.len(),
        mtime_ns: ns(m.mtime(), m.mtime_nsec()),
        ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        ino: m.ino(),
    })
}

fn settled(stamps: &[Option<Stamp>; 2], now: SystemTime) -> bool {
    let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else {
        return false;
    };
    let horizon = i128::try_from(now.saturating_sub(SETTLED).as_nanos()).unwrap_or(i128::MAX);
    stamps
        .iter()
        .flatten()
        .all(|s| s.mtime_ns < horizon && s.ctime_ns < horizon)
}

struct Cached {
    stamps: [Option<Stamp>; 2],
    /// The files' bytes, kept while the stamps are not settled: then a hit needs the same
    /// bytes too (reading two small files still costs far less than parsing them).
    contents: Option<Arc<Contents>>,
    sop: Arc<Sop>,
    diagnostics: Vec<Diagnostic>,
}

fn cache() -> &'static Mutex<HashMap<PathBuf, Cached>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Cached>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// [`load_one`] for callers that load the same SOP again and again (every execute request
/// of the daemon): a valid SOP is kept, shared, until its files change. Two `stat`s instead
/// of reading and parsing; and runs of one SOP share one value, which the store recognises
/// without serializing it again.
pub fn load_shared(home: &Home, dir_name: &str) -> (Option<Arc<Sop>>, Vec<Diagnostic>) {
    load_shared_at(home, dir_name, SystemTime::now())
}

fn load_shared_at(
    home: &Home,
    dir_name: &str,
    now: SystemTime,
) -> (Option<Arc<Sop>>, Vec<Diagnostic>) {
    let dir = home.sop_dir(dir_name);
    let paths = [dir.join("SOP.toml"), dir.join("SOP.md")];
    let before = [stamp(&paths[0]), stamp(&paths[1])];
    let young = !settled(&before, now);
    // Stamps taken within [`SETTLED`] of a change may hide a same-tick rewrite: an entry
    // cached then is a hit only with the same bytes, until the bytes are found the same once
    // the stamps have settled (any later change then shows in the stamps). Files are read
    // outside the lock.
    let kept = {
        let cached = cache().lock().unwrap_or_else(PoisonError::into_inner);
        match cached.get(&dir).filter(|c| c.stamps == before) {
            Some(c) => match &c.contents {
                None => return (Some(Arc::clone(&c.sop)), c.diagnostics.clone()),
                Some(kept) => Some(Arc::clone(kept)),
            },
            None => None,
        }
    };
    let mut read = None;
    if let Some(kept) = kept {
        let now_bytes = read_both(&paths);
        if *kept == now_bytes {
            let mut cached = cache().lock().unwrap_or_else(PoisonError::into_inner);
            let same_entry = cached
                .get_mut(&dir)
                .filter(|c| c.contents.as_ref().is_some_and(|k| Arc::ptr_eq(k, &kept)));
            if let Some(c) = same_entry {
                if !young {
                    c.contents = None;
                }
                return (Some(Arc::clone(&c.sop)), c.diagnostics.clone());
            }
        }
        read = Some(now_bytes);
    }
    // Files changed within the last [`SETTLED`] are told apart by their bytes as well.
    let contents = young.then(|| read.unwrap_or_else(|| read_both(&paths)));
    let loaded = load_one(home, dir_name);
    let Some(sop) = loaded.sop.map(Arc::new) else {
        return (None, loaded.diagnostics);
    };
    let after = [stamp(&paths[0]), stamp(&paths[1])];
    let unchanged = after == before
        && match &contents {
            None => true,
            // What was parsed lies between two identical reads.
            Some(c) => *c == read_both(&paths),
        };
    let mut cached = cache().lock().unwrap_or_else(PoisonError::into_inner);
    if unchanged {
        cached.insert(
            dir,
            Cached {
                stamps: after,
                contents: contents.map(Arc::new),
                sop: Arc::clone(&sop),
                diagnostics: loaded.diagnostics.clone(),
            },
        );
    } else {
        cached.remove(&dir);
    }
    (Some(sop), loaded.diagnostics)
}

/// The bytes of `SOP.toml` and `SOP.md` (`None`: unreadable).
type Contents = [Option<Vec<u8>>; 2];

fn read_both(paths: &[PathBuf; 2]) -> Contents {
    [fs::read(&paths[0]).ok(), fs::read(&paths[1]).ok()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home_with(md: &str) -> (tempfile::TempDir, Home) {
        let dir = tempfile::tempdir().expect("temp dir");
        let sop = dir.path().join("sops/hello");
        fs::create_dir_all(&sop).expect("sop dir");
        fs::write(
            sop.join("SOP.toml"),
            "[sop]\nname = \"hello\"\ndescription = \"d\"\nversion = \"1.0.0\"\n",
        )
        .expect("toml");
        fs::write(sop.join("SOP.md"), md).expect("md");
        let home = Home::new(dir.path().to_path_buf());
        (dir, home)
    }

    const ONE: &str = "# hello\n\n## Steps\n\n1. **Say**\n   ```bash\n   echo hi\n   ```\n";
    const TWO: &str = "# hello\n\n## Steps\n\n1. **Say**\n   ```bash\n   echo hi\n   ```\n\n2. **Again**\n   ```bash\n   echo again\n   ```\n";

    #[test]
    fn a_settled_sop_is_shared_until_its_files_change() {
        let (_dir, home) = home_with(ONE);
        let later = SystemTime::now() + Duration::from_secs(10);
        let (a, _) = load_shared_at(&home, "hello", later);
        let (b, _) = load_shared_at(&home, "hello", later);
        let (a, b) = (a.expect("valid"), b.expect("valid"));
        assert!(Arc::ptr_eq(&a, &b), "the second load is the cached value");
        fs::write(home.sop_dir("hello").join("SOP.md"), TWO).expect("md");
        let (c, _) = load_shared_at(&home, "hello", later);
        assert_eq!(
            c.expect("valid").steps.len(),
            2,
            "a changed file is read again"
        );
    }

    /// Simulates a rewrite of `SOP.md` that kept its stamps: the bytes the cache remembers
    /// for the (young) entry are changed instead.
    fn forge_md(home: &Home, md: &str) {
        cache()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&home.sop_dir("hello"))
            .and_then(|c| c.contents.as_mut().map(Arc::make_mut))
            .expect("unsettled entries keep their bytes")[1] = Some(md.as_bytes().to_vec());
    }

    #[test]
    fn files_written_just_now_are_shared_only_while_their_bytes_are_the_same() {
        let (_dir, home) = home_with(ONE);
        let (a, _) = load_shared(&home, "hello");
        let (b, _) = load_shared(&home, "hello");
        let (a, b) = (a.expect("valid"), b.expect("valid"));
        assert!(
            Arc::ptr_eq(&a, &b),
            "the same bytes: shared, although just written"
        );
        // A rewrite within one timestamp tick keeps the stamps; only the bytes differ.
        forge_md(&home, TWO);
        let (c, _) = load_shared(&home, "hello");
        assert!(
            !Arc::ptr_eq(&a, &c.expect("valid")),
            "other bytes: parsed again"
        );
    }

    #[test]
    fn an_entry_cached_young_is_checked_byte_for_byte_once_its_stamps_settle() {
        let (_dir, home) = home_with(ONE);
        let (young, _) = load_shared(&home, "hello");
        let young = young.expect("valid");
        // A same-tick rewrite, hidden behind the stamps taken while young.
        forge_md(&home, TWO);
        let later = SystemTime::now() + Duration::from_secs(10);
        let (settled, _) = load_shared_at(&home, "hello", later);
        let settled = settled.expect("valid");
        assert!(!Arc::ptr_eq(&young, &settled), "other bytes: parsed again");
        // Cached young, with the same bytes once settled: a hit, and from then on the stamps
        // alone decide.
        let (_other_dir, other) = home_with(ONE);
        let (young, _) = load_shared(&other, "hello");
        let (settled, _) = load_shared_at(&other, "hello", later);
        assert!(Arc::ptr_eq(
            &young.expect("valid"),
            &settled.expect("valid")
        ));
        assert!(cache()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&other.sop_dir("hello"))
            .is_some_and(|c| c.contents.is_none()));
    }

    #[test]
    fn a_sop_with_errors_is_not_kept() {
        let (_dir, home) = home_with("no steps here\n");
        let later = SystemTime::now() + Duration::from_secs(10);
        let (sop, diagnostics) = load_shared_at(&home, "hello", later);
        assert!(sop.is_none());
        assert!(diagnostics.iter().any(Diagnostic::is_error));
        fs::write(home.sop_dir("hello").join("SOP.md"), ONE).expect("md");
        assert!(
            load_shared_at(&home, "hello", later).0.is_some(),
            "the fix is seen"
        );
    }
}
