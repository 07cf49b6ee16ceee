//! The command line, as clap derive types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sop",
    version,
    about = "Run Standard Operating Procedures with approvals, a durable queue and audit logs"
)]
pub struct Cli {
    /// The home directory (sops/, logs/, state/, sop.toml). Default: the current directory.
    #[arg(long, global = true, env = "SOP_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the home layout with one example SOP.
    Init,
    /// List SOPs: name, priority, mode, description.
    List(JsonFlag),
    /// Show one SOP: steps with conditions, gates, triggers, vars.
    Show {
        sop: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Check SOP files and report every problem.
    Validate {
        /// SOP names (default: all).
        sops: Vec<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Run a SOP (in the foreground unless --detach).
    Run(RunArgs),
    /// Status of a run, of a SOP's latest run, or of all active runs.
    Status {
        target: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List runs.
    Runs {
        #[arg(long)]
        sop: Option<String>,
        #[arg(long)]
        status: Option<String>,
        /// How many runs at most.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Print a run's step output (-f: follow until it finishes).
    Logs {
        run: String,
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Approve the gate a run waits at.
    Approve {
        target: String,
        #[arg(long)]
        comment: Option<String>,
        /// Set a variable: k=v (repeatable).
        #[arg(long = "set", value_name = "K=V")]
        set: Vec<String>,
        /// Only if the run waits at this gate (`start`, `step 3`, `gate pre_patch`, ...):
        /// refuses instead of deciding a gate you have not seen.
        #[arg(long)]
        gate: Option<String>,
    },
    /// Reject the gate a run waits at.
    Reject {
        target: String,
        #[arg(long)]
        reason: String,
        /// Only if the run waits at this gate (`start`, `step 3`, `gate pre_patch`, ...):
        /// refuses instead of deciding a gate you have not seen.
        #[arg(long)]
        gate: Option<String>,
    },
    /// Confirm a manual step done (or --failed).
    Confirm {
        target: String,
        #[arg(long = "set", value_name = "K=V")]
        set: Vec<String>,
        #[arg(long)]
        failed: bool,
        #[arg(long)]
        comment: Option<String>,
        /// Only if the run waits at this gate (`start`, `step 3`, `gate pre_patch`, ...):
        /// refuses instead of deciding a gate you have not seen.
        #[arg(long)]
        gate: Option<String>,
    },
    /// Cancel a run (rollback runs if a step already ran).
    Cancel { target: String },
    /// Metrics per SOP and overall, for all time and the last 30 and 7 days: runs by
    /// status, success rate, durations, waits, approvals, suppressed triggers.
    Metrics {
        sop: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Send a command line: text that runs every SOP whose `command` trigger matches it
    /// (with the vars its groups caught), or `/approve <sop|run> [comment]`,
    /// `/reject <sop|run> <reason>`.
    Cmd {
        text: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Triggers.
    #[command(subcommand)]
    Trigger(TriggerCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Continue an interrupted run.
    Resume {
        run: String,
        #[arg(long, conflicts_with_all = ["skip", "abort"])]
        retry: bool,
        #[arg(long, conflicts_with = "abort")]
        skip: bool,
        #[arg(long)]
        abort: bool,
        /// Continue in the background.
        #[arg(long)]
        detach: bool,
    },
    /// Serve the HTTP API and run the scheduler (queued runs, deadlines, recovery).
    Serve {
        /// Address to listen on (default: `bind` in sop.toml, else 127.0.0.1:7311).
        #[arg(long)]
        bind: Option<String>,
        /// Store URL: `sqlite://PATH` (relative to the home).
        #[arg(long)]
        db: Option<String>,
    },
    /// API tokens for `sop serve`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Internal: drive a run in this process (used by --detach and recovery).
    #[command(name = "__drive", hide = true)]
    Drive { run: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that the event ledger and the run files were not altered, removed or
    /// reordered (exit 1 if anything was).
    Verify {
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum TriggerCommand {
    /// Show what `sop cmd` would do with a command line: the SOPs it matches, with their
    /// vars, or the run a built-in would decide. Runs nothing.
    Test {
        text: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new API token (once) and the `[[tokens]]` lines for `sop.toml`.
    Create {
        /// The identity the token carries (recorded for decisions): `[A-Za-z0-9._@-]{1,64}`.
        #[arg(long)]
        name: String,
        /// What the token may do.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
}

/// A token's role (SPEC §9): each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Read SOPs, runs, approvals, metrics.
    Viewer,
    /// Also execute and cancel.
    Operator,
    /// Also approve, reject, confirm.
    Approver,
    /// Everything, including `skip_approval` and `force`.
    Admin,
}

impl RoleArg {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleArg::Viewer => "viewer",
            RoleArg::Operator => "operator",
            RoleArg::Approver => "approver",
            RoleArg::Admin => "admin",
        }
    }
}

#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    pub sop: String,
    /// A variable: k=v (repeatable).
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
    /// Skip approvals (never manual steps). Audited.
    #[arg(long)]
    pub skip_approval: bool,
    /// Hand the run to a background process and print its id.
    #[arg(long)]
    pub detach: bool,
    /// Override the SOP's priority: low, medium, high, critical.
    #[arg(long)]
    pub priority: Option<String>,
    /// Start even in cooldown. Audited.
    #[arg(long)]
    pub force: bool,
}
