//! The production binary must never accept a forged WhatsApp certificate chain.
//!
//! whatsapp-rust's `danger-skip-cert-chain-verify` (and wacore-noise's `test-util`, which
//! makes the zero-signed chain of the loopback server) reach pgwa only through
//! `[dev-dependencies]`: under `cargo test` features unify, so the `pgwa` binary built for
//! the integration tests has them and can log in to the loopback server; `cargo build
//! --release` / `cargo run --release -- run` resolve features without dev-dependencies,
//! so the binary they build does not. This test asks cargo's own feature resolver for both
//! feature sets: the production one must lack the features, and the dev one must have
//! them (so the check can fail, and would notice the features moving or being renamed).
//!
//! It also keeps the SQL in one crate: only `pgwa-pg` (and the tests' `pgwa-testkit`)
//! may depend on sqlx, so a statement anywhere else fails the build's tests.

use std::process::Command;

const DANGER: &str = "danger-skip-cert-chain-verify";
const TEST_UTIL: &str = "test-util";

/// `cargo tree` inverted on `krate`, with feature edges, over the given dependency kinds.
/// Offline: it only reads Cargo.toml/Cargo.lock and the local registry cache.
fn features_of(krate: &str, edges: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--offline", "-p", "pgwa", "--prefix", "none", "--edges", edges, "-i", krate])
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree -e {edges} -i {krate} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("cargo tree prints UTF-8")
}

fn has_feature(tree: &str, krate: &str, feature: &str) -> bool {
    let needle = format!("{krate} feature \"{feature}\"");
    tree.lines().any(|l| l.trim_start().starts_with(&needle))
}

#[test]
fn production_build_has_no_cert_chain_bypass() {
    // What `cargo build --release` resolves: normal and build dependencies only.
    let prod = features_of("whatsapp-rust", "normal,build,features");
    assert!(
        has_feature(&prod, "whatsapp-rust", "tokio-transport"),
        "the production tree lists whatsapp-rust's features:\n{prod}"
    );
    assert!(!has_feature(&prod, "whatsapp-rust", DANGER), "the production build enables whatsapp-rust/{DANGER}:\n{prod}");
    // The noise crate exists in production (whatsapp-rust needs it), its test helpers don't.
    let prod_noise = features_of("wacore-noise", "normal,build,features");
    assert!(
        !has_feature(&prod_noise, "wacore-noise", TEST_UTIL),
        "the production build enables wacore-noise/{TEST_UTIL}:\n{prod_noise}"
    );
}

#[test]
fn test_build_has_the_bypass_so_the_check_can_fail() {
    // What `cargo test` resolves: dev-dependencies included, features unified.
    let dev = features_of("whatsapp-rust", "normal,build,dev,features");
    assert!(has_feature(&dev, "whatsapp-rust", DANGER), "the test build lacks whatsapp-rust/{DANGER}:\n{dev}");
    let dev_noise = features_of("wacore-noise", "normal,build,dev,features");
    assert!(has_feature(&dev_noise, "wacore-noise", TEST_UTIL), "the test build lacks wacore-noise/{TEST_UTIL}:\n{dev_noise}");
}

/// The crates that may run SQL: every statement lives in pgwa-pg; pgwa-testkit makes the
/// tests' databases (tests only, never in the binary).
const SQLX_ALLOWED: &[&str] = &["pgwa-pg", "pgwa-testkit"];

#[test]
fn only_the_postgres_crate_depends_on_sqlx() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["metadata", "--offline", "--format-version", "1", "--no-deps"])
        .output()
        .expect("running cargo metadata");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("cargo metadata lists packages");
    let mut with_sqlx = Vec::new();
    for p in packages {
        let name = p["name"].as_str().expect("a package has a name");
        // Normal dependencies only ("kind": null): dev-dependencies never reach the binary,
        // and the tests read and write the database directly.
        let direct_sqlx = p["dependencies"]
            .as_array()
            .expect("a package lists its dependencies")
            .iter()
            .any(|d| d["name"] == "sqlx" && d["kind"].is_null());
        if direct_sqlx {
            with_sqlx.push(name.to_owned());
        }
    }
    // The check sees the workspace: the crate that must have sqlx has it.
    assert!(with_sqlx.iter().any(|n| n == "pgwa-pg"), "pgwa-pg lacks sqlx; packages seen: {with_sqlx:?}");
    for name in &with_sqlx {
        assert!(
            SQLX_ALLOWED.contains(&name.as_str()),
            "crate {name} depends on sqlx: move its SQL into crates/pg (pgwa-pg) and call it from there; \
             only {SQLX_ALLOWED:?} may depend on sqlx"
        );
    }
}
