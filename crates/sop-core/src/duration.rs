//! Parsing the durations (`30s`, `1h30m`) and sizes (`1MiB`) written in SOP and config files.

/// Seconds in a `d`, `h`, `m` and `s`, largest first: the order parts must be written in.
const DURATION_UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// The forms a duration may take, for "expected ..." and "write ..." texts.
const DURATION_FORMS: &str = "seconds (`500`) or whole numbers with units `d`, `h`, `m`, `s` \
     from largest to smallest (`30s`, `10m`, `2h`, `1d`, `1h30m`)";

/// Why a duration was refused. `Display` says it in one sentence; [`DurationError::problem`]
/// and [`DurationError::help`] split it for a diagnostic with a `help:` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration: expected {DURATION_FORMS}")]
    Empty,
    #[error("invalid duration `{input}`: expected {DURATION_FORMS}")]
    Invalid { input: String },
    #[error(
        "invalid duration `{input}`: `{unit}` is out of order or repeated; expected {DURATION_FORMS}"
    )]
    OutOfOrder { input: String, unit: char },
    #[error("duration `{input}` is too large: expected at most {}", u64::MAX)]
    TooLarge { input: String },
}

impl DurationError {
    /// What is wrong, without the forms a duration may take (those are [`Self::help`]).
    pub fn problem(&self) -> String {
        match self {
            DurationError::Empty => "expected a duration, found nothing".to_string(),
            DurationError::Invalid { input } => format!("expected a duration, found `{input}`"),
            DurationError::OutOfOrder { input, unit } => {
                format!("`{unit}` is out of order or repeated in `{input}`")
            }
            DurationError::TooLarge { input } => {
                format!(
                    "`{input}` is too large: expected at most {} seconds",
                    u64::MAX
                )
            }
        }
    }

    /// How to write a duration, where that is the fix.
    pub fn help(&self) -> Option<String> {
        match self {
            DurationError::TooLarge { .. } => None,
            _ => Some(format!("write {DURATION_FORMS}")),
        }
    }
}

/// A duration in seconds: a plain number of seconds (`500`) or parts with units from largest
/// to smallest, each at most once (`30s`, `10m`, `2h`, `1d`, `1h30m`).
pub fn parse_duration(s: &str) -> Result<u64, DurationError> {
    let text = s.trim();
    let invalid = || DurationError::Invalid {
        input: s.to_string(),
    };
    let overflow = || DurationError::TooLarge {
        input: s.to_string(),
    };
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| overflow());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    // Index into DURATION_UNITS of the next unit allowed.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let (number, after) = rest.split_at(digits);
        let mut chars = after.chars();
        let unit = chars.next().ok_or_else(invalid)?;
        let Some(index) = DURATION_UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(invalid());
        };
        if index < next_unit {
            return Err(DurationError::OutOfOrder {
                input: s.to_string(),
                unit,
            });
        }
        next_unit = index + 1;
        let secs = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(DURATION_UNITS[index].1))
            .and_then(|n| total.checked_add(n));
        total = secs.ok_or_else(overflow)?;
        rest = chars.as_str();
    }
    Ok(total)
}

/// [`parse_duration`] with the error as one sentence.
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// Bytes in each size unit (matched case-insensitively). `k`, `m`, `g` alone are binary,
/// as in nginx and most Unix tools.
const SIZE_UNITS: [(&str, u64); 12] = [
    ("b", 1),
    ("kb", 1000),
    ("mb", 1000 * 1000),
    ("gb", 1000 * 1000 * 1000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("tb", 1000 * 1000 * 1000 * 1000),
    ("k", 1 << 10),
    ("m", 1 << 20),
    ("g", 1 << 30),
];

const SIZE_EXPECTED: &str =
    "expected a whole number of bytes, optionally with a unit: `B`, `KiB`, `MiB`, `GiB`, `TiB`, `KB`, `MB`, `GB`, `TB`";

/// A size in bytes: `1024`, `512KiB`, `1MiB`, `2MB`, `1 GiB`. `KiB`/`MiB`/... are powers of
/// 1024, `KB`/`MB`/... powers of 1000; units are case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err(format!("empty size: {SIZE_EXPECTED}"));
    }
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let unit = unit.trim_start();
    let multiplier = if unit.is_empty() {
        Some(1)
    } else {
        SIZE_UNITS
            .iter()
            .find(|(u, _)| unit.eq_ignore_ascii_case(u))
            .map(|(_, m)| *m)
    };
    let (Some(multiplier), false) = (multiplier, number.is_empty()) else {
        return Err(format!("invalid size `{s}`: {SIZE_EXPECTED}"));
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| too_large("size", s))
}

fn too_large(what: &str, s: &str) -> String {
    format!("{what} `{s}` is too large: expected at most {}", u64::MAX)
}
