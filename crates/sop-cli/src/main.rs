//! The `sop` binary: parses the command line, opens the home, and calls the crates below.

/// `println!` that ignores a closed stdout (`sop runs --json | head` must not panic).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod app;
mod backend;
mod cli;
mod cmd;
mod printer;
mod remote;
mod target;

use std::process::ExitCode;

use clap::Parser;

/// Exit codes (SPEC §10): 0 success, 1 the run or command failed, 2 bad input or usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    Failed,
    BadInput,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        match e {
            Exit::Ok => ExitCode::SUCCESS,
            Exit::Failed => ExitCode::from(1),
            Exit::BadInput => ExitCode::from(2),
        }
    }
}

/// An error with the exit code it deserves. Messages follow the project style.
#[derive(Debug)]
pub struct Fail {
    pub exit: Exit,
    pub message: String,
}

impl Fail {
    pub fn bad(message: impl Into<String>) -> Fail {
        Fail {
            exit: Exit::BadInput,
            message: message.into(),
        }
    }
    pub fn failed(message: impl Into<String>) -> Fail {
        Fail {
            exit: Exit::Failed,
            message: message.into(),
        }
    }
}

impl From<anyhow::Error> for Fail {
    fn from(e: anyhow::Error) -> Fail {
        Fail::failed(format!("{e:#}"))
    }
}

impl From<sop_store::StoreError> for Fail {
    fn from(e: sop_store::StoreError) -> Fail {
        Fail::failed(e.to_string())
    }
}

pub type CmdResult = Result<Exit, Fail>;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cmd::dispatch(cli) {
        Ok(exit) => exit.into(),
        Err(fail) => {
            eprintln!("error: {}", fail.message);
            fail.exit.into()
        }
    }
}
