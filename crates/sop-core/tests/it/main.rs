//! The one integration-test binary of `sop-core`: each module tests one concept.

mod command;
mod condition;
mod duration;
mod file_watch;
mod machine;
mod metrics;
mod notify;
mod parse;
mod policy;
mod schedule;
mod vars;
mod webhook;

/// A valid SOP `t` with one `true` step and `manifest` after its `[sop]` name and
/// description (more keys, `[vars]`, `[[triggers]]`).
pub fn one_step_sop(manifest: &str) -> sop_core::Sop {
    let toml = format!("[sop]\nname = \"t\"\ndescription = \"d\"\n{manifest}");
    let md = "## Steps\n\n1. **One**\n   ```bash\n   true\n   ```\n";
    let (sop, diags) = sop_core::parse_sop(&sop_core::SopFiles {
        dir_name: "t",
        toml_path: "sops/t/SOP.toml",
        toml: Some(toml.as_bytes()),
        md_path: "sops/t/SOP.md",
        md: Some(md.as_bytes()),
    });
    sop.unwrap_or_else(|| panic!("{diags:?}"))
}
