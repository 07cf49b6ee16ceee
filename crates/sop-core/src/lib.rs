//! sop-core: SOP files → a checked [`Sop`]; the condition language; the run state machine;
//! the scheduling policy. Pure: no IO, no clock (time is passed in), no processes, no async.

pub mod command;
pub mod condition;
pub mod config;
pub mod diagnostic;
pub mod duration;
pub mod file_watch;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod parse;
pub mod policy;
pub mod run;
pub mod schedule;
pub mod vars;
pub mod webhook;

pub use condition::Condition;
pub use diagnostic::{Diagnostic, Severity};
pub use model::*;
pub use parse::{parse_sop, SopFiles};
