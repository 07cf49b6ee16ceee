//! Replacing secret values by `***` in text, in the forms they commonly take on the way out:
//! plain, base64 (standard and URL-safe, with and without padding) and URL-encoded.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What replaces a secret.
pub const MASK: &str = "***";

/// Secrets shorter than this many characters are not redacted: masking every `a` or `42` in
/// the output would destroy it while hiding nothing a guesser could not try anyway.
pub const MIN_SECRET_CHARS: usize = 3;

/// Shortest base64 fragment masked inside a larger blob; shorter ones would match by chance.
pub const MIN_FRAGMENT_CHARS: usize = 8;

/// Everything but the RFC 3986 unreserved characters, as most URL encoders escape.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Replaces secrets in text. Built once per run from its secret values.
///
/// Matching is leftmost, longest first, in one pass over the text. Base64 is found both when
/// the secret was encoded on its own and inside a larger encoded blob (as with
/// `Authorization: Basic base64(user:secret)`), where only the characters that depend on the
/// secret alone are masked, and only when there are at least [`MIN_FRAGMENT_CHARS`] of them.
/// Percent-encoding is found with upper-case hex digits only.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Every form of every secret, longest first, without duplicates.
    patterns: Vec<String>,
}

impl Redactor {
    /// A redactor for `secrets`; values shorter than [`MIN_SECRET_CHARS`] are ignored.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut patterns: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.chars().count() >= MIN_SECRET_CHARS)
            .flat_map(|s| encoded_forms(&s))
            .collect();
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        Redactor { patterns }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `text` with every form of every secret replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        if self.patterns.is_empty() {
            return text.to_string();
        }
        let mut first_bytes = [false; 256];
        for p in &self.patterns {
            if let Some(&b) = p.as_bytes().first() {
                first_bytes[usize::from(b)] = true;
            }
        }
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            // Patterns are UTF-8 and start with a non-continuation byte, so a match always
            // starts and ends on character boundaries.
            let found = first_bytes[usize::from(bytes[i])]
                .then(|| {
                    self.patterns
                        .iter()
                        .find(|p| bytes[i..].starts_with(p.as_bytes()))
                })
                .flatten();
            match found {
                Some(p) => {
                    out.push_str(text.get(copied..i).unwrap_or_default());
                    out.push_str(MASK);
                    i += p.len();
                    copied = i;
                }
                None => i += 1,
            }
        }
        out.push_str(text.get(copied..).unwrap_or_default());
        out
    }
}

/// A redactor's `Debug` must not print the secrets it holds.
impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns.len())
            .finish_non_exhaustive()
    }
}

/// The secret as written and as the encoders used in URLs, headers and configs write it.
fn encoded_forms(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let strict = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
    let component = utf8_percent_encode(secret, URL_COMPONENT).to_string();
    let form_strict = strict.replace("%20", "+");
    let form_component = component.replace("%20", "+");
    let mut forms = base64_fragments(bytes);
    forms.extend([
        secret.to_string(),
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        strict,
        component,
        form_strict,
        form_component,
    ]);
    forms
}

/// The base64 characters that encode `secret` alone when it sits at each of the three byte
/// offsets inside a larger blob: characters mixing in neighbouring bytes are left out.
fn base64_fragments(secret: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for offset in 0..3usize {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(secret);
        let bits = padded.len() * 8;
        // Character j covers bits 6j..6j+6; keep those inside the secret's bits.
        let first = (offset * 8).div_ceil(6);
        let end = bits / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&padded);
            if let Some(fragment) = encoded
                .get(first..end)
                .filter(|f| f.len() >= MIN_FRAGMENT_CHARS)
            {
                out.push(fragment.to_string());
            }
        }
    }
    out
}
