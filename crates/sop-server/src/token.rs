//! New API tokens for `sop token create`: 32 random bytes from the OS, and the sha256 that
//! `sop.toml` stores instead of the token.

use sha2::{Digest, Sha256};

/// Prefix of every token, so a leaked one is recognisable (secret scanners, logs).
const PREFIX: &str = "sop_";

/// A new random token and the hex sha256 of it (what goes into `sop.toml`).
///
/// # Panics
/// When the operating system's random generator fails: no token can be made safely then.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    let token = format!("{PREFIX}{}", hex::encode(bytes));
    let hash = token_sha256(&token);
    (token, hash)
}

/// The hex sha256 of a token, as `[[tokens]] sha256` holds it.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
