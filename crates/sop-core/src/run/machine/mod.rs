//! The run state machine: `(run, input, now) -> run' + what happened + what to do next`.
//!
//! Every function here mutates a [`Run`] value and appends [`Happened`] events; none does
//! IO. The caller (the runtime, through a store transaction) commits the new run and the
//! events *before* acting on the returned [`Action`].

mod control;
mod cursor;
mod decide;
mod types;
mod walk;

pub use control::{
    cancel, cancel_requested, halt, interrupt, interrupted_step_is_idempotent, resume,
};
pub use cursor::{current_label, current_record, current_target, record_for};
pub use decide::decide;
pub use types::*;
pub use walk::{advance, claimed, exited, expire, spawned, unspawned};
