//! Which variable names are accepted, and which are refused because they change how processes
//! behave.
//!
//! A var `x` reaches a step as two environment variables, `x` and `SOP_VAR_X`. The second is
//! always safe; the first is what this list guards. Variables can come from webhook bodies and
//! command captures, so think of every name as chosen by an outsider.
//!
//! Matching is exact-case, because environment names are case-sensitive on the platforms we
//! run on: a var called `path` sets `path`, which nothing reads, so it is allowed (real SOPs
//! use `version` next to `SKIP_ENV_CHECK`). The exception is proxies: curl and most HTTP
//! libraries read `http_proxy`, `https_proxy`, `no_proxy`, ... in lower case as well, so
//! every name ending in `_proxy` is refused whatever its case.

use super::VarError;

/// Longest accepted name, in characters.
const MAX_NAME_LEN: usize = 64;

/// How a [`Rule`] matches a name.
#[derive(Clone, Copy)]
enum Match {
    Exact(&'static str),
    Prefix(&'static str),
    /// Case-insensitive prefix.
    PrefixAnyCase(&'static str),
    /// Case-insensitive suffix.
    SuffixAnyCase(&'static str),
}

/// One family of refused names and why it is refused.
struct Rule {
    matcher: Match,
    reason: &'static str,
}

const SHELL: &str = "it changes how shells start or read commands";
const LOADER: &str = "it changes which libraries or code programs load";
const PROGRAM: &str = "it names a program that other programs run";
const NETWORK: &str = "it changes where network traffic goes or which servers are trusted";
const SESSION: &str = "it describes the user and session, and programs trust it";
const TOOLCHAIN: &str = "it changes which toolchain, daemon or cluster a command uses";
const SOP: &str = "`SOP_*` names are set by sop-runner itself";

const fn exact(text: &'static str, reason: &'static str) -> Rule {
    Rule {
        matcher: Match::Exact(text),
        reason,
    }
}

const fn prefix(text: &'static str, reason: &'static str) -> Rule {
    Rule {
        matcher: Match::Prefix(text),
        reason,
    }
}

const fn prefix_any_case(text: &'static str, reason: &'static str) -> Rule {
    Rule {
        matcher: Match::PrefixAnyCase(text),
        reason,
    }
}

const fn suffix_any_case(text: &'static str, reason: &'static str) -> Rule {
    Rule {
        matcher: Match::SuffixAnyCase(text),
        reason,
    }
}

/// The refused names. Order matters only for which family an error names.
const RULES: &[Rule] = &[
    // Shells: startup files, parsing, tracing, exported functions.
    exact("PATH", SHELL),
    exact("HOME", SHELL),
    exact("SHELL", SHELL),
    exact("IFS", SHELL),
    exact("ENV", SHELL),
    exact("CDPATH", SHELL),
    exact("GLOBIGNORE", SHELL),
    exact("SHELLOPTS", SHELL),
    exact("BASHOPTS", SHELL),
    exact("PS4", SHELL),
    exact("PROMPT_COMMAND", SHELL),
    exact("ZDOTDIR", SHELL),
    exact("TMPDIR", SHELL),
    prefix("BASH_", SHELL), // BASH_ENV, BASH_FUNC_*, BASH_XTRACEFD, ...
    // The dynamic loader and libc.
    prefix("LD_", LOADER),
    prefix("DYLD_", LOADER),
    prefix("MALLOC_", LOADER),
    exact("GLIBC_TUNABLES", LOADER),
    exact("GCONV_PATH", LOADER),
    exact("LOCPATH", LOADER),
    exact("NLSPATH", LOADER),
    exact("LOCALDOMAIN", NETWORK),
    exact("HOSTALIASES", NETWORK),
    exact("RES_OPTIONS", NETWORK),
    // Interpreters and runtimes.
    prefix("PYTHON", LOADER),
    prefix("NODE_", LOADER), // NODE_OPTIONS, NODE_PATH, NODE_TLS_REJECT_UNAUTHORIZED
    prefix("PERL5", LOADER),
    exact("PERLLIB", LOADER),
    exact("RUBYOPT", LOADER),
    exact("RUBYLIB", LOADER),
    exact("GEM_HOME", LOADER),
    exact("GEM_PATH", LOADER),
    exact("JAVA_TOOL_OPTIONS", LOADER),
    exact("_JAVA_OPTIONS", LOADER),
    exact("JDK_JAVA_OPTIONS", LOADER),
    exact("JAVA_HOME", LOADER),
    exact("CLASSPATH", LOADER),
    // Programs that tools start on their own.
    exact("EDITOR", PROGRAM),
    exact("VISUAL", PROGRAM),
    exact("PAGER", PROGRAM),
    exact("BROWSER", PROGRAM),
    exact("LESSOPEN", PROGRAM),
    exact("LESSCLOSE", PROGRAM),
    prefix("SUDO_", PROGRAM),
    // Network routing and trust.
    suffix_any_case("_proxy", NETWORK),
    exact("SSL_CERT_FILE", NETWORK),
    exact("SSL_CERT_DIR", NETWORK),
    exact("CURL_CA_BUNDLE", NETWORK),
    exact("REQUESTS_CA_BUNDLE", NETWORK),
    exact("CURL_HOME", NETWORK),
    exact("WGETRC", NETWORK),
    // Tools with their own configuration by environment.
    prefix("GIT_", TOOLCHAIN),
    prefix("SSH_", TOOLCHAIN),
    prefix("DOCKER_", TOOLCHAIN),
    exact("KUBECONFIG", TOOLCHAIN),
    prefix("CARGO_", TOOLCHAIN),
    prefix("RUSTC", TOOLCHAIN),
    exact("RUSTFLAGS", TOOLCHAIN),
    prefix("RUSTUP_", TOOLCHAIN),
    exact("GOFLAGS", TOOLCHAIN),
    exact("GOPROXY", TOOLCHAIN),
    exact("GOPATH", TOOLCHAIN),
    exact("GOROOT", TOOLCHAIN),
    exact("GOTOOLCHAIN", TOOLCHAIN),
    prefix("PIP_", TOOLCHAIN),
    prefix_any_case("npm_config_", TOOLCHAIN),
    // The session: who and where the process is.
    exact("USER", SESSION),
    exact("LOGNAME", SESSION),
    exact("PWD", SESSION),
    exact("OLDPWD", SESSION),
    // Ours.
    prefix("SOP_", SOP),
];

/// Accepts `^[A-Za-z_][A-Za-z0-9_]{0,63}$` minus the names that change how processes behave.
///
/// Refused, exact case unless noted (see the module comment for why):
/// - shells: `PATH`, `HOME`, `SHELL`, `IFS`, `ENV`, `CDPATH`, `GLOBIGNORE`, `SHELLOPTS`,
///   `BASHOPTS`, `PS4`, `PROMPT_COMMAND`, `ZDOTDIR`, `TMPDIR`, `BASH_*` (`BASH_ENV`,
///   `BASH_FUNC_*`, ...);
/// - loader and libc: `LD_*`, `DYLD_*`, `MALLOC_*`, `GLIBC_TUNABLES`, `GCONV_PATH`, `LOCPATH`,
///   `NLSPATH`, `LOCALDOMAIN`, `HOSTALIASES`, `RES_OPTIONS`;
/// - interpreters: `PYTHON*`, `NODE_*`, `PERL5*`, `PERLLIB`, `RUBYOPT`, `RUBYLIB`, `GEM_HOME`,
///   `GEM_PATH`, `JAVA_TOOL_OPTIONS`, `_JAVA_OPTIONS`, `JDK_JAVA_OPTIONS`, `JAVA_HOME`,
///   `CLASSPATH`;
/// - programs run by other programs: `EDITOR`, `VISUAL`, `PAGER`, `BROWSER`, `LESSOPEN`,
///   `LESSCLOSE`, `SUDO_*`;
/// - network: `*_proxy` in any case, `SSL_CERT_FILE`, `SSL_CERT_DIR`, `CURL_CA_BUNDLE`,
///   `REQUESTS_CA_BUNDLE`, `CURL_HOME`, `WGETRC`;
/// - tools: `GIT_*`, `SSH_*`, `DOCKER_*`, `KUBECONFIG`, `CARGO_*`, `RUSTC*`, `RUSTFLAGS`,
///   `RUSTUP_*`, `GOFLAGS`, `GOPROXY`, `GOPATH`, `GOROOT`, `GOTOOLCHAIN`, `PIP_*`,
///   `npm_config_*` in any case;
/// - the session: `USER`, `LOGNAME`, `PWD`, `OLDPWD` (scripts trust them for who and where
///   they are);
/// - `SOP_*`, reserved for sop-runner.
///
/// `LANG`, `LC_*`, `TZ` and `TERM` are allowed: they change formatting, not what runs.
pub fn check_var_name(name: &str) -> Result<(), VarError> {
    check_name_shape(name)?;
    match RULES.iter().find(|r| matches(r.matcher, name)) {
        Some(r) => Err(VarError::ReservedName {
            name: name.to_string(),
            rule: shown(r.matcher),
            reason: r.reason,
        }),
        None => Ok(()),
    }
}

/// Accepts `^[A-Za-z_][A-Za-z0-9_]{0,63}$` only, refusing nothing by meaning: for names that
/// are not vars (a webhook's `secret_env`) or that are checked again where they become vars
/// (command capture groups).
pub(crate) fn check_name_shape(name: &str) -> Result<(), VarError> {
    let len = name.chars().count();
    if len == 0 {
        return Err(VarError::EmptyName);
    }
    if len > MAX_NAME_LEN {
        return Err(VarError::NameTooLong {
            name: name.to_string(),
            len,
        });
    }
    for (i, c) in name.chars().enumerate() {
        let (ok, expected) = if i == 0 {
            (c.is_ascii_alphabetic() || c == '_', "a letter or `_` first")
        } else {
            (
                c.is_ascii_alphanumeric() || c == '_',
                "only letters, digits and `_`",
            )
        };
        if !ok {
            return Err(VarError::BadNameChar {
                name: name.to_string(),
                found: c,
                col: i + 1,
                expected,
            });
        }
    }
    Ok(())
}

fn matches(m: Match, name: &str) -> bool {
    match m {
        Match::Exact(s) => name == s,
        Match::Prefix(p) => name.starts_with(p),
        Match::PrefixAnyCase(p) => name
            .get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p)),
        Match::SuffixAnyCase(s) => name
            .len()
            .checked_sub(s.len())
            .and_then(|at| name.get(at..))
            .is_some_and(|tail| tail.eq_ignore_ascii_case(s)),
    }
}

/// How a rule is shown in messages: `PATH`, `LD_*`, `*_proxy`.
fn shown(m: Match) -> String {
    match m {
        Match::Exact(s) => s.to_string(),
        Match::Prefix(p) | Match::PrefixAnyCase(p) => format!("{p}*"),
        Match::SuffixAnyCase(s) => format!("*{s}"),
    }
}
