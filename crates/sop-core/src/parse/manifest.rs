//! `SOP.toml`: the `[sop]` table, `[vars]`, and the dispatch to triggers and gates.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::diagnostic::{Diagnostic, Severity};
use crate::model::{AdmissionPolicy, ExecutionMode, Priority, TimeoutAction, Trigger, VarDecl};

use super::fields::TomlCtx;
use super::gates::{parse_gates, PendingGate};
use super::names::{is_program_name, sop_name_problem, var_name_problem, workdir_problem};
use super::toml_tree::{get, Entry, Value};
use super::triggers::{parse_triggers, TriggerVars};

const TOP_KEYS: &[&str] = &["sop", "vars", "triggers", "gates"];

const SOP_KEYS: &[&str] = &[
    "name",
    "description",
    "version",
    "priority",
    "execution_mode",
    "cooldown_secs",
    "max_concurrent",
    "timeout_secs",
    "approval_timeout_secs",
    "approval_timeout_action",
    "approvers",
    "required_approvals",
    "allow_self_approval",
    "workdir",
    "shell",
    "admission_policy",
    "max_pending_approvals",
];

const VAR_KEYS: &[&str] = &["required", "pattern", "default", "description", "secret"];

/// Everything `SOP.toml` says, with defaults filled in where a value was missing or wrong.
#[derive(Debug)]
pub(crate) struct Manifest {
    pub name: String,
    pub description: String,
    pub version: String,
    pub priority: Priority,
    pub execution_mode: ExecutionMode,
    pub cooldown_secs: u64,
    pub max_concurrent: u32,
    pub timeout_secs: u64,
    pub approval_timeout_secs: u64,
    pub approval_timeout_action: TimeoutAction,
    pub approvers: Vec<String>,
    pub required_approvals: u32,
    pub allow_self_approval: bool,
    pub workdir: String,
    pub shell: String,
    pub admission_policy: AdmissionPolicy,
    pub max_pending_approvals: u32,
    /// `None`: no `[vars]` table (execute-time vars are then unrestricted).
    pub vars: Option<BTreeMap<String, VarDecl>>,
    pub triggers: Vec<Trigger>,
    pub trigger_vars: TriggerVars,
    pub gates: Vec<PendingGate>,
}

impl Default for Manifest {
    fn default() -> Manifest {
        Manifest {
            name: String::new(),
            description: String::new(),
            version: "0.1.0".to_string(),
            priority: Priority::Medium,
            execution_mode: ExecutionMode::Supervised,
            cooldown_secs: 0,
            max_concurrent: 1,
            timeout_secs: 3600,
            approval_timeout_secs: 604_800,
            approval_timeout_action: TimeoutAction::Reject,
            approvers: Vec::new(),
            required_approvals: 1,
            allow_self_approval: true,
            workdir: ".".to_string(),
            shell: "bash".to_string(),
            admission_policy: AdmissionPolicy::Parallel,
            max_pending_approvals: 0,
            vars: None,
            triggers: Vec::new(),
            trigger_vars: TriggerVars::default(),
            gates: Vec::new(),
        }
    }
}

/// Reads a parsed `SOP.toml` document; problems go to `ctx.diags`.
pub(crate) fn read_manifest(ctx: &mut TomlCtx<'_>, doc: &[Entry], dir_name: &str) -> Manifest {
    let mut manifest = Manifest::default();
    ctx.check_keys(doc, TOP_KEYS, "`SOP.toml`");
    if let Some(entry) = get(doc, "sop") {
        if let Some(table) = ctx.table(entry) {
            read_sop_table(ctx, &entry.node.span, table, dir_name, &mut manifest);
        }
    } else {
        let diag = Diagnostic::file(Severity::Error, ctx.src.path, "missing `[sop]` table")
            .with_help(format!(
                "start the file with `[sop]`, `name = \"{dir_name}\"` and `description = \"...\"`"
            ));
        ctx.diags.push(diag);
    }
    if let Some(entry) = get(doc, "vars") {
        if let Some(table) = ctx.table(entry) {
            manifest.vars = Some(read_vars(ctx, table));
        }
    }
    if let Some(entry) = get(doc, "triggers") {
        (manifest.triggers, manifest.trigger_vars) = parse_triggers(ctx, entry);
    }
    if let Some(entry) = get(doc, "gates") {
        if let Some(table) = ctx.table(entry) {
            manifest.gates = parse_gates(ctx, table);
        }
    }
    manifest
}

fn read_sop_table(
    ctx: &mut TomlCtx<'_>,
    span: &Range<usize>,
    table: &[Entry],
    dir_name: &str,
    m: &mut Manifest,
) {
    ctx.check_keys(table, SOP_KEYS, "`[sop]`");
    for key in ["name", "description"] {
        if get(table, key).is_none() {
            let diag = ctx
                .src
                .error(span, format!("`[sop]` is missing the required key `{key}`"));
            let help = if key == "name" {
                format!("add `name = \"{dir_name}\"`")
            } else {
                "add `description = \"...\"`: one line saying what the procedure does".to_string()
            };
            ctx.diags.push(diag.with_help(help));
        }
    }
    for entry in table {
        read_sop_key(ctx, entry, dir_name, m);
    }
}

fn read_sop_key(ctx: &mut TomlCtx<'_>, entry: &Entry, dir_name: &str, m: &mut Manifest) {
    match entry.key.as_str() {
        "name" => {
            if let Some(name) = ctx.string(entry) {
                check_name(ctx, entry, &name, dir_name);
                m.name = name;
            }
        }
        "description" => {
            if let Some(description) = ctx.string(entry) {
                if description.trim().is_empty() {
                    ctx.error_at(&entry.node, "`description` is empty").help =
                        Some("say in one line what the procedure does".to_string());
                }
                m.description = description;
            }
        }
        "version" => {
            if let Some(version) = ctx.string(entry) {
                m.version = version;
            }
        }
        "priority" => {
            if let Some(p) = ctx.choice(
                entry,
                &["low", "medium", "high", "critical", "normal"],
                Priority::parse,
            ) {
                m.priority = p;
            }
        }
        "execution_mode" => {
            let modes = [
                "automatic",
                "supervised",
                "step_by_step",
                "priority_based",
                "auto",
            ];
            if let Some(mode) = ctx.choice(entry, &modes, ExecutionMode::parse) {
                m.execution_mode = mode;
            }
        }
        "approval_timeout_action" => {
            let parse = |s: &str| match s {
                "reject" => Some(TimeoutAction::Reject),
                "escalate" => Some(TimeoutAction::Escalate),
                _ => None,
            };
            if let Some(action) = ctx.choice(entry, &["reject", "escalate"], parse) {
                m.approval_timeout_action = action;
            }
        }
        "admission_policy" => {
            let parse = |s: &str| match s {
                "parallel" => Some(AdmissionPolicy::Parallel),
                "hold" => Some(AdmissionPolicy::Hold),
                "coalesce" => Some(AdmissionPolicy::Coalesce),
                "drop" => Some(AdmissionPolicy::Drop),
                _ => None,
            };
            if let Some(policy) =
                ctx.choice(entry, &["parallel", "hold", "coalesce", "drop"], parse)
            {
                m.admission_policy = policy;
            }
        }
        "cooldown_secs" => m.cooldown_secs = ctx.uint(entry).unwrap_or(m.cooldown_secs),
        "timeout_secs" => m.timeout_secs = positive(ctx, entry, ctx_uint).unwrap_or(m.timeout_secs),
        "approval_timeout_secs" => {
            m.approval_timeout_secs =
                positive(ctx, entry, ctx_uint).unwrap_or(m.approval_timeout_secs);
        }
        "max_concurrent" => {
            m.max_concurrent = positive(ctx, entry, ctx_uint32).unwrap_or(m.max_concurrent);
        }
        "required_approvals" => {
            m.required_approvals = positive(ctx, entry, ctx_uint32).unwrap_or(m.required_approvals);
        }
        "max_pending_approvals" => {
            m.max_pending_approvals = ctx.uint32(entry).unwrap_or(m.max_pending_approvals);
        }
        "allow_self_approval" => {
            m.allow_self_approval = ctx.boolean(entry).unwrap_or(m.allow_self_approval);
        }
        "approvers" => m.approvers = ctx.string_list(entry).unwrap_or_default(),
        "workdir" => {
            if let Some(workdir) = ctx.string(entry) {
                if let Some(problem) = workdir_problem(&workdir) {
                    ctx.error_at(&entry.node, problem).help = Some(
                        "use a path inside the sop directory, such as `.` or `scripts`".to_string(),
                    );
                }
                m.workdir = workdir;
            }
        }
        "shell" => {
            if let Some(shell) = ctx.string(entry) {
                if !is_program_name(&shell) {
                    ctx.error_at(
                        &entry.node,
                        format!("`shell` must be a program name, found `{shell}`"),
                    )
                    .help = Some("for example `bash`, `sh` or `zsh`".to_string());
                }
                m.shell = shell;
            }
        }
        _ => {}
    }
}

fn ctx_uint(ctx: &mut TomlCtx<'_>, entry: &Entry) -> Option<u64> {
    ctx.uint(entry)
}

fn ctx_uint32(ctx: &mut TomlCtx<'_>, entry: &Entry) -> Option<u32> {
    ctx.uint32(entry)
}

/// A number that must be at least 1.
fn positive<T: PartialEq + From<u8>>(
    ctx: &mut TomlCtx<'_>,
    entry: &Entry,
    read: fn(&mut TomlCtx<'_>, &Entry) -> Option<T>,
) -> Option<T> {
    let value = read(ctx, entry)?;
    if value == T::from(0) {
        ctx.error_at(
            &entry.node,
            format!("`{}` must be at least 1, found `0`", entry.key),
        )
        .help = Some("remove the key to use the default".to_string());
        return None;
    }
    Some(value)
}

fn check_name(ctx: &mut TomlCtx<'_>, entry: &Entry, name: &str, dir_name: &str) {
    if let Some((message, help)) = sop_name_problem(name) {
        ctx.error_at(&entry.node, message).help = Some(help);
    } else if name != dir_name {
        let message = format!("`name` is `{name}` but the directory is `{dir_name}`");
        ctx.error_at(&entry.node, message).help = Some(format!(
            "rename the directory to `{name}` or set `name = \"{dir_name}\"`"
        ));
    }
}

fn read_vars(ctx: &mut TomlCtx<'_>, table: &[Entry]) -> BTreeMap<String, VarDecl> {
    let mut vars = BTreeMap::new();
    for entry in table {
        if let Some((message, help)) = var_name_problem(&entry.key) {
            let mut diag = ctx.src.error(&entry.key_span, message);
            diag.help = help;
            ctx.diags.push(diag);
        }
        let decl = match &entry.node.value {
            Value::String(default) => Some(VarDecl {
                default: Some(default.clone()),
                ..VarDecl::default()
            }),
            Value::Table(fields) => Some(read_var_decl(ctx, fields)),
            other => {
                let message = format!(
                    "variable `{}` must be a table or a default string, found {}",
                    entry.key,
                    other.type_name()
                );
                ctx.error_at(&entry.node, message).help = Some(format!(
                    "for example `{} = {{ default = \"...\" }}`",
                    entry.key
                ));
                None
            }
        };
        if let Some(decl) = decl {
            vars.insert(entry.key.clone(), decl);
        }
    }
    vars
}

fn read_var_decl(ctx: &mut TomlCtx<'_>, fields: &[Entry]) -> VarDecl {
    ctx.check_keys(fields, VAR_KEYS, "a `[vars]` entry");
    let mut decl = VarDecl::default();
    let mut pattern = None;
    for field in fields {
        match field.key.as_str() {
            "required" => decl.required = ctx.boolean(field).unwrap_or(false),
            "secret" => decl.secret = ctx.boolean(field).unwrap_or(false),
            "description" => decl.description = ctx.string(field),
            "default" => decl.default = ctx.string(field),
            "pattern" => {
                if let Some(text) = ctx.string(field) {
                    pattern = ctx.regex(field, &text).map(|re| (re, field));
                    decl.pattern = Some(text);
                }
            }
            _ => {}
        }
    }
    if let (Some((re, field)), Some(default)) = (&pattern, &decl.default) {
        if !re.is_match(default) {
            let message = format!("default `{default}` does not match `pattern`");
            ctx.error_at(&field.node, message).help =
                Some("change the default or the pattern".to_string());
        }
    }
    decl
}
