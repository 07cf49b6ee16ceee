//! The one integration-test binary of `sop-core`: each module tests one concept.

mod command;
mod condition;
mod duration;
mod file_watch;
mod machine;
mod metrics;
mod notify;
mod parse;
mod policy;
mod schedule;
mod vars;
mod webhook;
