//! Integration tests of the `sop` binary: real processes, real `SQLite` files, a temp home each.

mod approvals;
mod crash;
mod daemon;
mod files;
mod more;
mod runs;
mod support;
