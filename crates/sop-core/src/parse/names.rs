//! Which SOP names, variable names, paths and program names a SOP may use.

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

/// `^[A-Za-z_][A-Za-z0-9_]{0,63}$`
pub(crate) fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// Why a variable name is refused (SPEC §9), or `None` when it may be used.
// TODO(vars): dedupe with `crate::vars::check_var_name` once that module is complete.
pub(crate) fn var_name_problem(name: &str) -> Option<(String, String)> {
    if !is_var_name(name) {
        return Some((
            format!("invalid variable name `{name}`"),
            "use letters, digits and `_`, starting with a letter or `_` (at most 64)".to_string(),
        ));
    }
    let exact = [
        "PATH",
        "HOME",
        "SHELL",
        "IFS",
        "ENV",
        "BASH_ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "NODE_OPTIONS",
        "RUBYOPT",
        "TMPDIR",
        "CDPATH",
        "GLOBIGNORE",
    ];
    let prefixes = [
        "BASH_FUNC_",
        "LD_",
        "DYLD_",
        "PYTHON",
        "PERL5",
        "GIT_",
        "SSH_",
        "SOP_",
    ];
    let refused = exact.contains(&name)
        || prefixes.iter().any(|p| name.starts_with(p))
        || name.ends_with("_proxy")
        || name.ends_with("_PROXY");
    if refused {
        let help = if name.starts_with("SOP_") {
            "`SOP_*` names are reserved for the runner; choose another name".to_string()
        } else {
            "this name changes how processes behave, so it cannot be a variable; choose another name".to_string()
        };
        return Some((format!("variable name `{name}` is refused"), help));
    }
    None
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
        assert!(var_name_problem("1x").is_some());
        assert!(workdir_problem("sub/../x").is_none());
        assert!(workdir_problem("../x").is_some());
        assert!(workdir_problem("/tmp").is_some());
    }
}
