//! The one integration-test binary of `sop-core`: each module tests one concept.

mod condition;
mod duration;
mod parse;
mod vars;
mod machine;
mod policy;
