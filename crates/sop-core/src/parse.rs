//! `SOP.toml` + `SOP.md` bytes → a checked [`Sop`] and every diagnostic. Placeholder: being written.

use crate::diagnostic::Diagnostic;
use crate::model::Sop;

/// Files larger than this are refused unread.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The raw inputs of one SOP directory, as read by the loader (no IO happens here).
#[derive(Debug, Clone, Copy)]
pub struct SopFiles<'a> {
    /// The directory's name (`sops/<dir_name>/`): `[sop].name` must equal it.
    pub dir_name: &'a str,
    /// Display path of `SOP.toml`, e.g. `sops/deploy/SOP.toml`.
    pub toml_path: &'a str,
    /// `None`: the file does not exist.
    pub toml: Option<&'a [u8]>,
    pub md_path: &'a str,
    pub md: Option<&'a [u8]>,
}

/// Parses and checks one SOP. The `Sop` is returned only when no diagnostic is an error;
/// warnings come back either way.
pub fn parse_sop(files: &SopFiles<'_>) -> (Option<Sop>, Vec<Diagnostic>) {
    let _ = files;
    (None, Vec::new())
}
