//! `SOP.toml` + `SOP.md` bytes → a checked [`Sop`] and every diagnostic (SPEC §2-4).
//!
//! Both files are always read to the end so that one pass reports every problem:
//! `manifest` reads the TOML tree of `toml_tree`, `procedure` the markdown, and `lint`
//! checks what needs both.

mod annotations;
mod fences;
mod fields;
mod gates;
mod lint;
mod manifest;
mod names;
mod procedure;
mod span;
mod toml_tree;
mod triggers;

use crate::diagnostic::{Diagnostic, Severity};
use crate::model::Sop;

use fields::TomlCtx;
use manifest::{read_manifest, Manifest};
use procedure::{read_procedure, Procedure};
use span::Source;

/// Files larger than this are refused unread.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The raw inputs of one SOP directory, as read by the loader (no IO happens here).
#[derive(Debug, Clone, Copy)]
pub struct SopFiles<'a> {
    /// The directory's name (`sops/<dir_name>/`): `[sop].name` must equal it.
    pub dir_name: &'a str,
    /// Display path of `SOP.toml`, e.g. `sops/deploy/SOP.toml`.
    pub toml_path: &'a str,
    /// `None`: the file does not exist.
    pub toml: Option<&'a [u8]>,
    pub md_path: &'a str,
    pub md: Option<&'a [u8]>,
}

/// Parses and checks one SOP. The `Sop` is returned only when no diagnostic is an error;
/// warnings come back either way.
pub fn parse_sop(files: &SopFiles<'_>) -> (Option<Sop>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let toml_text = file_text(files.toml, files.toml_path, "SOP.toml", &mut diags);
    let md_text = file_text(files.md, files.md_path, "SOP.md", &mut diags);

    let toml_src = toml_text.map(|text| Source::new(files.toml_path, text));
    let manifest = toml_src
        .as_ref()
        .and_then(|src| read_toml(src, files.dir_name, &mut diags));
    let shell = manifest.as_ref().map_or("bash", |m| m.shell.as_str());
    let md_src = md_text.map(|text| Source::new(files.md_path, text));
    let procedure = md_src
        .as_ref()
        .map(|src| read_procedure(src, shell, &mut diags));

    if let (Some(toml_src), Some(md_src), Some(manifest), Some(procedure)) =
        (&toml_src, &md_src, &manifest, &procedure)
    {
        lint::check_gates(toml_src, manifest, procedure.steps.len(), &mut diags);
        lint::check_condition_vars(md_src, manifest, procedure, &mut diags);
    }

    // File order, then position; the sort is stable, so one place keeps discovery order.
    diags.sort_by_key(|d| (d.path != files.toml_path, d.line, d.col));
    let sop = match (manifest, procedure) {
        (Some(manifest), Some(procedure)) if !diags.iter().any(Diagnostic::is_error) => {
            Some(build(manifest, procedure))
        }
        _ => None,
    };
    (sop, diags)
}

/// The text of a file, or `None` with a whole-file diagnostic.
fn file_text<'a>(
    bytes: Option<&'a [u8]>,
    path: &str,
    name: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<&'a str> {
    let error = |message: String| Diagnostic::file(Severity::Error, path, message);
    let Some(bytes) = bytes else {
        let diag = error(format!("missing `{name}`")).with_help(
            "a sop directory holds `SOP.toml` (the manifest) and `SOP.md` (the procedure)",
        );
        diags.push(diag);
        return None;
    };
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let message = format!(
            "`{name}` is {} bytes, over the limit of {MAX_FILE_BYTES} bytes (1 MiB)",
            bytes.len()
        );
        diags.push(error(message).with_help("split the procedure into several sops"));
        return None;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let offset = err.valid_up_to();
            let lossy = String::from_utf8_lossy(bytes);
            let prefix = String::from_utf8_lossy(&bytes[..offset]);
            let line = prefix.matches('\n').count() as u32 + 1;
            let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
            let message = format!(
                "`{name}` is not valid UTF-8: invalid byte at offset {offset} (line {line})"
            );
            let diag = Diagnostic::at(Severity::Error, path, &lossy, line, col, 1, message)
                .with_help("save the file as UTF-8");
            diags.push(diag);
            return None;
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        let help = if name == "SOP.toml" {
            "start with `[sop]`, `name = \"...\"` and `description = \"...\"`"
        } else {
            "add a `## Steps` section with numbered steps"
        };
        diags.push(error(format!("`{name}` is empty")).with_help(help));
        return None;
    }
    Some(text)
}

fn read_toml(src: &Source<'_>, dir_name: &str, diags: &mut Vec<Diagnostic>) -> Option<Manifest> {
    let doc = match toml_tree::parse_document(src.text) {
        Ok(doc) => doc,
        Err(err) => {
            diags.push(toml_error(src, &err));
            return None;
        }
    };
    let mut ctx = TomlCtx {
        src: Source::new(src.path, src.text),
        diags: Vec::new(),
    };
    let manifest = read_manifest(&mut ctx, &doc, dir_name);
    diags.append(&mut ctx.diags);
    Some(manifest)
}

fn toml_error(src: &Source<'_>, err: &toml::de::Error) -> Diagnostic {
    let message = err
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let message = format!("malformed `SOP.toml`: {message}");
    let help = if message.contains("duplicate key") {
        "each key may appear once per table; remove one of them"
    } else {
        "see https://toml.io for the syntax"
    };
    match err.span() {
        Some(span) => src.error(&span, message).with_help(help),
        None => Diagnostic::file(Severity::Error, src.path, message).with_help(help),
    }
}

fn build(m: Manifest, p: Procedure) -> Sop {
    Sop {
        name: m.name,
        description: m.description,
        version: m.version,
        priority: m.priority,
        execution_mode: m.execution_mode,
        cooldown_secs: m.cooldown_secs,
        max_concurrent: m.max_concurrent,
        timeout_secs: m.timeout_secs,
        approval_timeout_secs: m.approval_timeout_secs,
        approval_timeout_action: m.approval_timeout_action,
        approvers: m.approvers,
        required_approvals: m.required_approvals,
        allow_self_approval: m.allow_self_approval,
        workdir: m.workdir,
        shell: m.shell,
        admission_policy: m.admission_policy,
        max_pending_approvals: m.max_pending_approvals,
        vars: m.vars.unwrap_or_default(),
        triggers: m.triggers,
        gates: m.gates.into_iter().map(|g| g.gate).collect(),
        steps: p.steps.into_iter().map(|b| b.step).collect(),
        rollback: p.rollback.into_iter().map(|b| b.step).collect(),
    }
}
