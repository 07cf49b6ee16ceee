//! `sop.toml`: the runner's configuration (SPEC §11). Every key optional; unknown keys are
//! errors with a hint.

use serde::Deserialize;

use crate::diagnostic::{did_you_mean, Diagnostic, Severity};

/// `sqlite_synchronous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

/// Ordered: `Viewer < Operator < Approver < Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Approver,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    pub sha256: String,
}

/// A notification channel (`[[notify]]`, SPEC §5): where notices of `events` go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NotifyEntry {
    /// An HTTP POST of the notice: its JSON document, or `{"text": ...}` for Slack.
    Webhook {
        url: String,
        #[serde(default)]
        format: NotifyFormat,
        #[serde(default = "default_events")]
        events: Vec<NotifyEvent>,
    },
    /// A command run by `sh -c`, with the notice as JSON on its standard input and its
    /// fields in the environment.
    Command {
        command: String,
        #[serde(default = "default_events")]
        events: Vec<NotifyEvent>,
    },
    /// A line in the daemon's log.
    Log {
        #[serde(default = "default_events")]
        events: Vec<NotifyEvent>,
    },
}

impl NotifyEntry {
    /// The events this channel is sent.
    pub fn events(&self) -> &[NotifyEvent] {
        match self {
            NotifyEntry::Webhook { events, .. }
            | NotifyEntry::Command { events, .. }
            | NotifyEntry::Log { events } => events,
        }
    }

    /// `webhook`, `command` or `log`.
    pub fn kind(&self) -> &'static str {
        match self {
            NotifyEntry::Webhook { .. } => "webhook",
            NotifyEntry::Command { .. } => "command",
            NotifyEntry::Log { .. } => "log",
        }
    }
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A run waits at an approval gate or a manual step (again, when escalated).
    ApprovalNeeded,
    /// A run ended `failure` or `timed_out`.
    RunFailed,
    /// A run ended `success` (only sent to channels that list it).
    RunSucceeded,
}

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::ApprovalNeeded => "approval_needed",
            NotifyEvent::RunFailed => "run_failed",
            NotifyEvent::RunSucceeded => "run_succeeded",
        }
    }
}

/// What a channel is sent when `events` is not given.
fn default_events() -> Vec<NotifyEvent> {
    vec![NotifyEvent::ApprovalNeeded, NotifyEvent::RunFailed]
}

/// The body of a webhook notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// The notice's JSON document.
    #[default]
    Json,
    /// `{"text": "..."}`, as Slack's incoming webhooks (and many chat tools) take.
    Slack,
}

/// The parsed `sop.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerConfig {
    pub workers: u32,
    pub bind: String,
    pub url: Option<String>,
    pub database: Option<String>,
    pub sqlite_synchronous: SqliteSync,
    pub secret_env: Vec<String>,
    /// Runner environment variables passed through to steps (nothing else is).
    pub pass_env: Vec<String>,
    pub step_output_limit: String,
    pub kill_grace_secs: u64,
    /// `sop serve`: how long ended runs' audit files gather before one file-system sync
    /// makes them durable together; 0 syncs each as its run ends.
    pub audit_group_ms: u64,
    pub tokens: Vec<TokenEntry>,
    pub notify: Vec<NotifyEntry>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            workers: 4,
            bind: "127.0.0.1:7311".to_string(),
            url: None,
            database: None,
            sqlite_synchronous: SqliteSync::Full,
            secret_env: Vec::new(),
            pass_env: Vec::new(),
            step_output_limit: "1MiB".to_string(),
            kill_grace_secs: 10,
            audit_group_ms: 100,
            tokens: Vec::new(),
            notify: Vec::new(),
        }
    }
}

const KEYS: &[&str] = &[
    "workers",
    "bind",
    "url",
    "database",
    "sqlite_synchronous",
    "secret_env",
    "pass_env",
    "step_output_limit",
    "kill_grace_secs",
    "audit_group_ms",
    "tokens",
    "notify",
];

impl RunnerConfig {
    /// Parses `sop.toml`; `path` is for messages only.
    pub fn parse(path: &str, source: &str) -> Result<RunnerConfig, Diagnostic> {
        let config: RunnerConfig = toml::from_str(source).map_err(|e| {
            let (line, col, len) = e
                .span()
                .map_or((0, 0, 0), |span| crate::diagnostic::line_col(source, span));
            let message = e.message().to_string();
            let mut d = if line == 0 {
                Diagnostic::file(
                    Severity::Error,
                    path,
                    format!("invalid `sop.toml`: {message}"),
                )
            } else {
                Diagnostic::at(
                    Severity::Error,
                    path,
                    source,
                    line,
                    col,
                    len,
                    message.clone(),
                )
            };
            if let Some(key) = message
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next())
            {
                if let Some(help) = did_you_mean(key, KEYS.iter().copied()) {
                    d = d.with_help(help);
                }
            }
            d
        })?;
        if config.workers == 0 {
            return Err(Diagnostic::file(
                Severity::Error,
                path,
                "`workers` must be at least 1",
            ));
        }
        if let Err(e) = crate::duration::parse_size(&config.step_output_limit) {
            return Err(Diagnostic::file(
                Severity::Error,
                path,
                format!("`step_output_limit`: {e}"),
            ));
        }
        Ok(config)
    }

    /// The step output limit in bytes (checked by [`RunnerConfig::parse`]).
    pub fn output_limit_bytes(&self) -> u64 {
        crate::duration::parse_size(&self.step_output_limit).unwrap_or(1024 * 1024)
    }
}
