//! Which SOP names, variable names, paths and program names a SOP may use.

use crate::vars::{check_name_shape, check_var_name};

/// Why a SOP name is refused, with a hint.
pub(crate) fn sop_name_problem(name: &str) -> Option<(String, String)> {
    let help = "use lower-case letters, digits, `.`, `_` and `-`, starting with a letter or digit (at most 64)".to_string();
    if name.contains("..") || name.contains('/') || name.contains('\\') {
        return Some((
            format!("sop name `{name}` must not contain `..` or a path separator"),
            help,
        ));
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !rest_ok || name.len() > 64 {
        return Some((format!("invalid sop name `{name}`"), help));
    }
    None
}

/// Why a variable name is refused, as a diagnostic's message and help. The rules are
/// [`check_var_name`]'s, so a SOP is refused at load time for any name a run would refuse.
pub(crate) fn var_name_problem(name: &str) -> Option<(String, Option<String>)> {
    let err = check_var_name(name).err()?;
    Some((err.to_string(), err.help()))
}

/// `^[A-Za-z_][A-Za-z0-9_]{0,63}$`: the shape of a variable or environment name, without
/// [`var_name_problem`]'s refused names.
pub(crate) fn is_var_name(name: &str) -> bool {
    check_name_shape(name).is_ok()
}

/// Why a working directory is refused: it must stay inside the SOP directory.
pub(crate) fn workdir_problem(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("`workdir` is empty".to_string());
    }
    if path.starts_with('/') || path.starts_with('\\') || path.as_bytes().get(1) == Some(&b':') {
        return Some(format!(
            "`workdir` must be relative to the sop directory, found `{path}`"
        ));
    }
    let mut depth: i32 = 0;
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => depth -= 1,
            _ => depth += 1,
        }
        if depth < 0 {
            return Some(format!("`workdir` `{path}` leaves the sop directory"));
        }
    }
    None
}

/// A program name for `shell`: no spaces or shell syntax.
pub(crate) fn is_program_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(sop_name_problem("deploy-production").is_none());
        assert!(sop_name_problem("a..b").is_some());
        assert!(sop_name_problem("Deploy").is_some());
        assert!(var_name_problem("SKIP_ENV_CHECK").is_none());
        assert!(var_name_problem("version").is_none());
        assert!(var_name_problem("PATH").is_some());
        assert!(var_name_problem("http_proxy").is_some());
        assert!(var_name_problem("LD_PRELOAD").is_some());
        assert!(var_name_problem("SOP_X").is_some());
        assert!(var_name_problem("BASH_FUNC_x").is_some());
        assert!(var_name_problem("1x").is_some());
        assert!(is_var_name("GITHUB_WEBHOOK_SECRET"));
        assert!(is_var_name("SOP_X"));
        assert!(!is_var_name("1x"));
        assert!(workdir_problem("sub/../x").is_none());
        assert!(workdir_problem("../x").is_some());
        assert!(workdir_problem("/tmp").is_some());
    }
}
