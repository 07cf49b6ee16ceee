//! `[[triggers]]`: command patterns, file watches, schedules, webhooks and manual triggers.

use std::collections::BTreeSet;

use crate::diagnostic::did_you_mean;
use crate::model::{CatchUp, FileEvent, Trigger};

use super::fields::{backticked, one_of_help, TomlCtx};
use super::names::is_var_name;
use super::toml_tree::{get, Entry, Node, Value};

const SUPPORTED: &[&str] = &[
    "command",
    "file_watch",
    "schedule",
    "webhook",
    "manual",
    "filesystem",
    "cron",
];

/// Variables the SOP's triggers can set, for the "no source sets this" lint.
#[derive(Debug, Default)]
pub(crate) struct TriggerVars {
    pub names: BTreeSet<String>,
    /// `match_1..match_n` from command captures.
    pub match_count: usize,
    /// A webhook body can set any variable.
    pub any: bool,
}

/// Reads the `triggers` entry: an array of tables (`[triggers]` with nothing in it = none).
pub(crate) fn parse_triggers(ctx: &mut TomlCtx<'_>, entry: &Entry) -> (Vec<Trigger>, TriggerVars) {
    let mut vars = TriggerVars::default();
    let mut triggers = Vec::new();
    match &entry.node.value {
        Value::Table(fields) if fields.is_empty() => {}
        Value::Array(items) => {
            for item in items {
                if let Some(fields) = item.as_table() {
                    if let Some(trigger) = read_trigger(ctx, item, fields, &mut vars) {
                        triggers.push(trigger);
                    }
                } else {
                    let message = format!(
                        "each trigger must be a table, found {}",
                        item.value.type_name()
                    );
                    ctx.error_at(item, message).help =
                        Some("write each trigger under its own `[[triggers]]` header".to_string());
                }
            }
        }
        other => {
            let message = format!(
                "`triggers` must be an array of tables, found {}",
                other.type_name()
            );
            ctx.error_at(&entry.node, message).help = Some(
                "write each trigger under its own `[[triggers]]` header (two brackets)".to_string(),
            );
        }
    }
    (triggers, vars)
}

fn read_trigger(
    ctx: &mut TomlCtx<'_>,
    node: &Node,
    fields: &[Entry],
    vars: &mut TriggerVars,
) -> Option<Trigger> {
    let Some(type_entry) = get(fields, "type") else {
        let help = format!("add `type = ...`, one of {}", backticked(&SUPPORTED[..5]));
        ctx.error_at(node, "trigger is missing `type`").help = Some(help);
        return None;
    };
    let kind = ctx.string(type_entry)?;
    match kind.as_str() {
        "command" => {
            ctx.check_keys(
                fields,
                &["type", "pattern", "capture_groups"],
                "a `command` trigger",
            );
            command(ctx, node, fields, vars)
        }
        "file_watch" | "filesystem" => {
            ctx.check_keys(
                fields,
                &["type", "path", "event", "events", "debounce_ms"],
                &format!("a `{kind}` trigger"),
            );
            file_watch(ctx, node, fields, vars)
        }
        "schedule" | "cron" => {
            let keys = [
                "type",
                "cron",
                "expression",
                "timezone",
                "catch_up",
                "max_catch_up",
            ];
            ctx.check_keys(fields, &keys, &format!("a `{kind}` trigger"));
            schedule(ctx, node, fields, vars)
        }
        "webhook" => {
            ctx.check_keys(
                fields,
                &["type", "path", "secret_env"],
                "a `webhook` trigger",
            );
            webhook(ctx, node, fields, vars)
        }
        "manual" => {
            ctx.check_keys(fields, &["type"], "a `manual` trigger");
            Some(Trigger::Manual)
        }
        _ => {
            if let Some(help) = did_you_mean(&kind, SUPPORTED.iter().copied()) {
                ctx.error_at(&type_entry.node, format!("unknown trigger type `{kind}`"))
                    .help = Some(help);
                return None;
            }
            let warning = ctx.src.warning(
                &type_entry.node.span,
                format!("trigger type `{kind}` is not supported here; ignored"),
            );
            let help = format!("supported types: {}", backticked(&SUPPORTED[..5]));
            ctx.diags.push(warning.with_help(help));
            Some(Trigger::Unsupported { kind })
        }
    }
}

fn required<'e>(
    ctx: &mut TomlCtx<'_>,
    node: &Node,
    fields: &'e [Entry],
    key: &str,
    kind: &str,
    example: &str,
) -> Option<&'e Entry> {
    let entry = get(fields, key);
    if entry.is_none() {
        ctx.error_at(node, format!("`{kind}` trigger is missing `{key}`"))
            .help = Some(format!("add `{key} = {example}`"));
    }
    entry
}

fn command(
    ctx: &mut TomlCtx<'_>,
    node: &Node,
    fields: &[Entry],
    vars: &mut TriggerVars,
) -> Option<Trigger> {
    let capture_groups = get(fields, "capture_groups").map_or(Some(true), |e| ctx.boolean(e));
    let entry = required(
        ctx,
        node,
        fields,
        "pattern",
        "command",
        "\"^deploy: (?P<version>\\\\S+)$\"",
    )?;
    let pattern = ctx.string(entry)?;
    let regex = ctx.regex(entry, &pattern)?;
    let capture_groups = capture_groups?;
    if capture_groups {
        vars.match_count = vars.match_count.max(regex.captures_len() - 1);
        for (i, name) in regex.capture_names().enumerate() {
            let Some(name) = name.filter(|n| is_var_name(n)) else {
                continue;
            };
            if let Err(refused) = crate::vars::check_var_name(name) {
                // Shaped like a variable, but one steps may not be given.
                let warning = ctx.src.warning(
                    &entry.node.span,
                    format!("named group `{name}` gives no variable: {refused}"),
                );
                let help = format!("rename the group; its text is still `match_{i}`");
                ctx.diags.push(warning.with_help(help));
                continue;
            }
            vars.names.insert(name.to_string());
        }
    }
    Some(Trigger::Command {
        pattern,
        capture_groups,
    })
}

fn file_event(text: &str) -> Option<FileEvent> {
    match text {
        "create" | "created" => Some(FileEvent::Create),
        "modify" | "modified" => Some(FileEvent::Modify),
        "delete" | "deleted" => Some(FileEvent::Delete),
        _ => None,
    }
}

fn push_event(ctx: &mut TomlCtx<'_>, node: &Node, text: &str, events: &mut Vec<FileEvent>) -> bool {
    if let Some(event) = file_event(text) {
        if !events.contains(&event) {
            events.push(event);
        }
        true
    } else {
        let help = one_of_help(text, &["create", "modify", "delete"]);
        ctx.error_at(node, format!("unknown file event `{text}`"))
            .help = Some(help);
        false
    }
}

fn file_watch(
    ctx: &mut TomlCtx<'_>,
    node: &Node,
    fields: &[Entry],
    vars: &mut TriggerVars,
) -> Option<Trigger> {
    let mut ok = true;
    let mut events = Vec::new();
    if let Some(entry) = get(fields, "event") {
        match ctx.string(entry) {
            Some(text) => ok &= push_event(ctx, &entry.node, &text, &mut events),
            None => ok = false,
        }
    }
    if let Some(entry) = get(fields, "events") {
        if let Value::Array(items) = &entry.node.value {
            for item in items {
                if let Some(text) = item.as_str() {
                    ok &= push_event(ctx, item, text, &mut events);
                } else {
                    let message = format!(
                        "`events` must hold only strings, found {}",
                        item.value.type_name()
                    );
                    ctx.error_at(item, message);
                    ok = false;
                }
            }
        } else {
            ok = ctx.string_list(entry).is_some();
        }
    }
    if events.is_empty() {
        events = vec![FileEvent::Create, FileEvent::Modify, FileEvent::Delete];
    }
    let debounce_ms = get(fields, "debounce_ms").map_or(Some(500), |e| ctx.uint(e));
    let entry = required(
        ctx,
        node,
        fields,
        "path",
        "file_watch",
        "\"releases/*.tar.gz\"",
    )?;
    let path = ctx.string(entry)?;
    if path.split('/').any(|c| c == "..") {
        ctx.error_at(&entry.node, format!("file_watch path `{path}` has `..`"))
            .help =
            Some("name the directory itself: relative to the home, or absolute".to_string());
        return None;
    }
    if crate::file_watch::watch_root(&path).0 == std::path::Path::new("/") {
        ctx.error_at(
            &entry.node,
            format!("file_watch path `{path}` would watch the whole file system"),
        )
        .help = Some(
            "start the glob with the directory the files arrive in, e.g. `/job/releases/*.tar.gz`"
                .to_string(),
        );
        return None;
    }
    if let Err(err) = globset::Glob::new(&path) {
        ctx.error_at(
            &entry.node,
            format!("invalid glob `{path}`: {}", err.kind()),
        )
        .help = Some(
            "`*` matches within a directory, `**` across directories, `[abc]` one of".to_string(),
        );
        return None;
    }
    vars.names
        .extend(["file_path", "file_name", "file_event"].map(String::from));
    if !ok {
        return None;
    }
    Some(Trigger::FileWatch {
        path,
        events,
        debounce_ms: debounce_ms?,
    })
}

fn schedule(
    ctx: &mut TomlCtx<'_>,
    node: &Node,
    fields: &[Entry],
    vars: &mut TriggerVars,
) -> Option<Trigger> {
    vars.names.insert("scheduled_at".to_string());
    let timezone = get(fields, "timezone").map_or(Some("UTC".to_string()), |e| timezone(ctx, e));
    let catch_up = get(fields, "catch_up").map_or(Some(CatchUp::None), |e| catch_up(ctx, e));
    let max_catch_up = get(fields, "max_catch_up").map_or(Some(10), |e| ctx.uint32(e));
    let entry = match (get(fields, "cron"), get(fields, "expression")) {
        (Some(cron), Some(expression)) => {
            let message = "a schedule has both `cron` and `expression`";
            ctx.error_at(&expression.node, message).help = Some("keep one of them".to_string());
            Some(cron)
        }
        (Some(entry), None) | (None, Some(entry)) => Some(entry),
        (None, None) => required(ctx, node, fields, "cron", "schedule", "\"0 2 * * *\""),
    }?;
    let cron = ctx.string(entry)?;
    if let Err(err) = croner::Cron::new(&cron).with_seconds_optional().parse() {
        let reason = err.to_string();
        let reason = reason.trim_end_matches('.');
        let reason = [
            "Invalid pattern: ",
            "Component error: ",
            "Illegal characters: ",
        ]
        .iter()
        .fold(reason, |r, p| r.strip_prefix(p).unwrap_or(r));
        let message = format!("invalid cron expression `{cron}`: {}", lower_first(reason));
        ctx.error_at(&entry.node, message).help = Some("five fields `minute hour day-of-month month day-of-week` (six with seconds first), e.g. `0 2 * * *`".to_string());
        return None;
    }
    let within = |t: i64| t < Y2K + 28 * 366 * 24 * 3_600_000;
    let matches = crate::schedule::Schedule::new(&cron, "UTC")
        .and_then(|s| s.next_after(Y2K))
        .is_some_and(within);
    if !matches {
        let warning = ctx.src.warning(
            &entry.node.span,
            format!("cron expression `{cron}` never matches a date: the schedule never fires"),
        );
        let help = "check the day of month against the month (`30 2` is never a date)";
        ctx.diags.push(warning.with_help(help));
    }
    Some(Trigger::Schedule {
        cron,
        timezone: timezone?,
        catch_up: catch_up?,
        max_catch_up: max_catch_up?,
    })
}

/// 2000-01-01T00:00:00Z: a cron expression that matches at all matches within 28 years of it.
const Y2K: i64 = 946_684_800_000;

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

fn timezone(ctx: &mut TomlCtx<'_>, entry: &Entry) -> Option<String> {
    let name = ctx.string(entry)?;
    if name.parse::<chrono_tz::Tz>().is_ok() {
        return Some(name);
    }
    let help = did_you_mean(&name, chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()))
        .unwrap_or_else(|| "use an IANA name such as `UTC` or `Europe/Berlin`".to_string());
    ctx.error_at(&entry.node, format!("unknown timezone `{name}`"))
        .help = Some(help);
    None
}

fn catch_up(ctx: &mut TomlCtx<'_>, entry: &Entry) -> Option<CatchUp> {
    let parse = |text: &str| match text {
        "none" => Some(CatchUp::None),
        "latest" => Some(CatchUp::Latest),
        "all" => Some(CatchUp::All),
        _ => None,
    };
    ctx.choice(entry, &["none", "latest", "all"], parse)
}

fn webhook(
    ctx: &mut TomlCtx<'_>,
    node: &Node,
    fields: &[Entry],
    vars: &mut TriggerVars,
) -> Option<Trigger> {
    vars.any = true;
    let secret_env = match get(fields, "secret_env") {
        Some(entry) => {
            let name = ctx.string(entry)?;
            if !is_var_name(&name) {
                ctx.error_at(
                    &entry.node,
                    format!("`secret_env` must be an environment variable name, found `{name}`"),
                );
                return None;
            }
            Some(name)
        }
        None => None,
    };
    let entry = required(ctx, node, fields, "path", "webhook", "\"deploy\"")?;
    let path = ctx.string(entry)?;
    let chars_ok = !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if !chars_ok
        || path.contains("..")
        || path.starts_with('/')
        || path.ends_with('/')
        || path.contains("//")
    {
        let message = format!("invalid webhook path `{path}`");
        let help = "use letters, digits, `.`, `_`, `-` and inner `/`, without `..`; the hook is served at `/api/hooks/<path>`";
        ctx.error_at(&entry.node, message).help = Some(help.to_string());
        return None;
    }
    Some(Trigger::Webhook { path, secret_env })
}
