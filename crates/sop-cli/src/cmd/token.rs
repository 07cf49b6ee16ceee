//! `sop token create`: a new API token, printed once, and the `sop.toml` lines that let
//! `sop serve` accept it (only its sha256 is stored).

use crate::cli::RoleArg;
use crate::{CmdResult, Exit, Fail};

/// Token names: what decisions record as the identity, so plain and short.
fn check_name(name: &str) -> Result<(), Fail> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Fail::bad(format!(
            "`--name {name}`: expected 1 to 64 of `A-Z a-z 0-9 . _ @ -`"
        )))
    }
}

/// The token on stdout (nothing else there, for `$(sop token create ...)`); on stderr
/// the lines for `sop.toml`, each valid TOML so the whole block can be pasted.
pub fn create(name: &str, role: RoleArg) -> CmdResult {
    check_name(name)?;
    let (token, sha256) = sop_server::new_token();
    outln!("{token}");
    eprintln!(
        "# add to sop.toml (the token above is shown only this once; sop.toml keeps its sha256):"
    );
    eprintln!("[[tokens]]");
    eprintln!("name = \"{name}\"");
    eprintln!("role = \"{}\"", role.as_str());
    eprintln!("sha256 = \"{sha256}\"");
    Ok(Exit::Ok)
}
