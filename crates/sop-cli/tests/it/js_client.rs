//! The JavaScript client (`clients/js`) against a real `sop serve`: its own tests
//! (`node --test`) run here, so `cargo test --workspace` covers it.

use std::path::Path;
use std::process::Command;

use crate::daemon::Daemon;
use crate::support::Home;

#[test]
fn the_js_client_works_against_a_real_daemon() {
    let home = Home::new();
    home.simple(
        "hello",
        "max_concurrent = 5",
        "## Steps\n\n1. **Hi**\n   ```bash\n   echo \"hello $who\"\n   ```\n",
    );
    home.simple(
        "gate",
        "max_concurrent = 5",
        "## Steps\n\n1. **Ship** [requires_approval: true]\n   ```bash\n   true\n   ```\n",
    );
    let d = Daemon::start(&home);
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/js");
    let out = Command::new("node")
        .args(["--test", "--test-reporter=tap", "test/client.test.js"])
        .current_dir(&client)
        .env("SOP_URL", &d.url)
        .env_remove("SOP_TOKEN")
        .output()
        .expect("`node` (Node.js 18 or later) runs the JS client's tests; .ci/run installs it");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "node --test failed:\n{text}");
    assert!(
        text.contains("# pass 5") && text.contains("# fail 0"),
        "{text}"
    );
}
