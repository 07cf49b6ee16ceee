//! Integration tests of the `sop` binary: real processes, real `SQLite` files, a temp home each.

mod approvals;
mod client;
mod command;
mod crash;
#[allow(clippy::stable_sort_primitive)] // in a test written before this lint was on
mod daemon;
mod files;
mod hooks;
mod js_client;
mod more;
mod notify;
mod regressions;
mod runs;
mod support;
mod ui;
