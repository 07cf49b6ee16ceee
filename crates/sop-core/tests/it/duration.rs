//! Durations and sizes as written in SOP and config files.

use sop_core::duration::{parse_duration, parse_duration_secs, parse_size};

#[test]
fn durations() {
    let cases: &[(&str, u64)] = &[
        ("500", 500),
        ("0", 0),
        ("30s", 30),
        ("10m", 600),
        ("2h", 7_200),
        ("1d", 86_400),
        ("1h30m", 5_400),
        ("1d2h3m4s", 93_784),
        ("90m", 5_400),
        (" 45s ", 45),
        ("0s", 0),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_duration_secs(input), Ok(*expected), "`{input}`");
    }
}

#[test]
fn duration_errors() {
    let expected =
        "expected seconds (`500`) or whole numbers with units `d`, `h`, `m`, `s` from largest to \
                    smallest (`30s`, `10m`, `2h`, `1d`, `1h30m`)";
    let cases: &[(&str, String)] = &[
        ("", format!("empty duration: {expected}")),
        ("  ", format!("empty duration: {expected}")),
        ("10x", format!("invalid duration `10x`: {expected}")),
        ("1.5h", format!("invalid duration `1.5h`: {expected}")),
        ("h", format!("invalid duration `h`: {expected}")),
        ("1h 30m", format!("invalid duration `1h 30m`: {expected}")),
        ("-5s", format!("invalid duration `-5s`: {expected}")),
        ("5S", format!("invalid duration `5S`: {expected}")),
        ("10ms", format!("invalid duration `10ms`: {expected}")),
        (
            "30m1h",
            format!("invalid duration `30m1h`: `h` is out of order or repeated; {expected}"),
        ),
        (
            "1m1m",
            format!("invalid duration `1m1m`: `m` is out of order or repeated; {expected}"),
        ),
        (
            "99999999999999999999",
            "duration `99999999999999999999` is too large: expected at most 18446744073709551615"
                .to_string(),
        ),
        (
            "999999999999999999d",
            "duration `999999999999999999d` is too large: expected at most 18446744073709551615"
                .to_string(),
        ),
    ];
    for (input, message) in cases {
        assert_eq!(
            parse_duration_secs(input),
            Err(message.clone()),
            "`{input}`"
        );
    }
}

#[test]
fn sizes() {
    let cases: &[(&str, u64)] = &[
        ("1024", 1024),
        ("0", 0),
        ("1B", 1),
        ("512KiB", 512 * 1024),
        ("1MiB", 1024 * 1024),
        ("1mib", 1024 * 1024),
        ("2GiB", 2 << 30),
        ("1TiB", 1 << 40),
        ("2MB", 2_000_000),
        ("3kb", 3_000),
        ("1GB", 1_000_000_000),
        ("1TB", 1_000_000_000_000),
        ("4k", 4096),
        ("1M", 1 << 20),
        ("1G", 1 << 30),
        ("1 MiB", 1 << 20),
        (" 10 KB ", 10_000),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_size(input), Ok(*expected), "`{input}`");
    }
}

#[test]
fn size_errors() {
    let expected = "expected a whole number of bytes, optionally with a unit: `B`, `KiB`, `MiB`, `GiB`, `TiB`, \
                    `KB`, `MB`, `GB`, `TB`";
    for input in ["MiB", "1.5MiB", "1 XB", "-1", "1MiBs", "one", "1 2"] {
        assert_eq!(
            parse_size(input),
            Err(format!("invalid size `{input}`: {expected}")),
            "`{input}`"
        );
    }
    assert_eq!(parse_size(""), Err(format!("empty size: {expected}")));
    assert_eq!(
        parse_size("20000000TiB"),
        Err("size `20000000TiB` is too large: expected at most 18446744073709551615".to_string())
    );
}

#[test]
fn duration_errors_split_for_diagnostics() {
    let forms =
        "write seconds (`500`) or whole numbers with units `d`, `h`, `m`, `s` from largest \
                 to smallest (`30s`, `10m`, `2h`, `1d`, `1h30m`)";
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("", "expected a duration, found nothing", Some(forms)),
        (
            "5 minutes",
            "expected a duration, found `5 minutes`",
            Some(forms),
        ),
        ("+5", "expected a duration, found `+5`", Some(forms)),
        (
            "30m1h",
            "`h` is out of order or repeated in `30m1h`",
            Some(forms),
        ),
        (
            "999999999999999999d",
            "`999999999999999999d` is too large: expected at most 18446744073709551615 seconds",
            None,
        ),
    ];
    for (input, problem, help) in cases {
        let err = parse_duration(input).expect_err(input);
        assert_eq!(err.problem(), *problem, "`{input}`");
        assert_eq!(err.help().as_deref(), *help, "`{input}`");
        assert_eq!(
            parse_duration_secs(input),
            Err(err.to_string()),
            "`{input}`"
        );
    }
}
