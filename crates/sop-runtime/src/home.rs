//! The home directory: where SOPs, logs, state and `sop.toml` live (SPEC §1).

use std::path::{Path, PathBuf};

/// Paths of one home. All paths the runtime touches are derived from here.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn sops_dir(&self) -> PathBuf {
        self.root.join("sops")
    }

    /// The directory of one SOP. `name` must already be checked against the name pattern.
    pub fn sop_dir(&self, name: &str) -> PathBuf {
        self.sops_dir().join(name)
    }

    pub fn logs_dir(&self, sop: &str) -> PathBuf {
        self.root.join("logs").join("sop").join(sop)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    pub fn db_path(&self) -> PathBuf {
        self.state_dir().join("sop.db")
    }

    /// Scratch files of running steps (`$SOP_OUTPUT`).
    pub fn scratch_dir(&self) -> PathBuf {
        self.state_dir().join("tmp")
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("sop.toml")
    }

    /// `path` relative to the home when it is inside it (for messages).
    pub fn display(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}
