//! One module per group of commands.

mod command;
mod command_socket;
mod decide;
mod files;
mod init;
mod metrics;
mod run;
mod serve;
mod status;
mod token;

pub use files::print_diagnostics;

use sop_runtime::Home;

use crate::cli::{AuditCommand, Cli, Command, TokenCommand, TriggerCommand};
use crate::CmdResult;

pub fn dispatch(cli: Cli) -> CmdResult {
    let root = match cli.home {
        Some(h) => std::path::absolute(&h)
            .map_err(|e| crate::Fail::bad(format!("bad home `{}`: {e}", h.display())))?,
        None => std::env::current_dir()
            .map_err(|e| crate::Fail::failed(format!("cannot read the current directory: {e}")))?,
    };
    let home = Home::new(root);
    match cli.command {
        Command::Init => init::init(&home),
        Command::List(j) => files::list(&home, j.json),
        Command::Show { sop, json } => files::show(&home, &sop, json.json),
        Command::Validate { sops, json } => files::validate(&home, &sops, json.json),
        Command::Run(args) => run::run(home, &args),
        Command::Status { target, json } => status::status(home, target.as_deref(), json.json),
        Command::Runs {
            sop,
            status,
            limit,
            json,
        } => status::runs(home, sop, status.as_deref(), limit, json.json),
        Command::Logs { run, follow, json } => status::logs(home, &run, follow, json.json),
        Command::Approve {
            target,
            comment,
            set,
            gate,
        } => decide::approve(home, &target, comment, &set, gate),
        Command::Reject {
            target,
            reason,
            gate,
        } => decide::reject(home, &target, reason, gate),
        Command::Confirm {
            target,
            set,
            failed,
            comment,
            gate,
        } => decide::confirm(home, &target, &set, failed, comment, gate),
        Command::Cancel { target } => decide::cancel(home, &target),
        Command::Audit(AuditCommand::Verify { json }) => files::verify(&home, json.json),
        Command::Metrics { sop, json } => metrics::metrics(home, sop.as_deref(), json.json),
        Command::Cmd { text, json } => command::cmd(home, &text, json.json),
        Command::Trigger(TriggerCommand::Test { text, json }) => {
            command::trigger_test(home, &text, json.json)
        }
        Command::Resume {
            run,
            retry,
            skip,
            abort,
            detach,
        } => run::resume(home, &run, (retry, skip, abort), detach),
        Command::Drive { run } => run::drive(home, &run),
        Command::Token(TokenCommand::Create { name, role }) => token::create(&name, role),
        Command::Serve { bind, db } => serve::serve(&home, bind.as_deref(), db.as_deref()),
    }
}
