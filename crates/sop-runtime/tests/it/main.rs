//! Integration tests of `sop-runtime`, one binary for the whole crate.

mod process;
mod schedule;
