//! sop-runtime: the edges. Reads SOP files, spawns steps in process groups, drives runs
//! through the store, writes audit files, recovers after crashes. It makes no policy
//! decision of its own: `sop-core` decides, `sop-store` commits.

pub mod audit;
pub mod clock;
pub mod command;
pub mod daemon;
pub mod engine;
pub mod file_watch;
pub mod home;
pub mod identity;
pub mod loader;
pub mod notify;
pub mod ops;
pub mod output;
pub mod process;
pub mod recovery;
pub mod schedule;
pub mod verify;

pub use home::Home;
