//! Reads SOP directories from disk and hands their bytes to `sop-core` (which does no IO).

use std::fs;
use std::io::Read;
use std::path::Path;

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
