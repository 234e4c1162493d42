//! The README's shell blocks can be pasted as they are: each one parses, names only files
//! that exist, leaves the current directory alone (a `cd` in one line broke the next),
//! and the client examples' block runs for real against a fresh database.

use std::path::Path;
use std::process::Command;

use pgwa_testkit::TestDb;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The README's ```sh blocks, each with the line it starts on.
fn sh_blocks() -> Vec<(usize, String)> {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        match (&mut current, line.trim_start()) {
            (None, "```sh") => current = Some((i + 1, String::new())),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

/// Words of a block that name a file of this repository.
fn repo_paths(block: &str) -> Vec<String> {
    let tops = ["ecosystem/", "tests/", ".ci/", "docs/", "sql/", "migrations/", "crates/", "loopback/"];
    block
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '"' || c == '\''))
        .filter(|w| tops.iter().any(|t| w.starts_with(t)))
        .map(|w| w.trim_end_matches([';', ',']).to_owned())
        .collect()
}

#[test]
fn every_shell_block_parses_names_existing_files_and_keeps_the_directory() {
    let blocks = sh_blocks();
    assert!(blocks.len() >= 8, "found only {} sh blocks", blocks.len());
    for (line, block) in &blocks {
        let parsed = Command::new("bash").args(["-n", "-c", block]).output().unwrap();
        assert!(
            parsed.status.success(),
            "README line {line}: bash cannot parse\n{block}\n{}",
            String::from_utf8_lossy(&parsed.stderr)
        );
        for path in repo_paths(block) {
            assert!(Path::new(ROOT).join(&path).exists(), "README line {line}: {path} does not exist");
        }
        for l in block.lines().map(str::trim_start) {
            assert!(
                !l.starts_with("cd "),
                "README line {line}: `{l}` changes the directory for the lines after it; use (cd dir && ...)"
            );
        }
    }
}

#[test]
fn the_scan_finds_paths_and_a_bare_cd() {
    let paths =
        repo_paths("(cd ecosystem/clients/node && node send.js)\npsql -f \"tests/fixtures/x.sql\"\n# docs/not-a-command\n");
    assert_eq!(paths, ["ecosystem/clients/node", "tests/fixtures/x.sql"]);
}

/// The client examples' block, as written, with the README's database URL pointed at a
/// fresh test database: the session is added, the Node example enqueues in a
/// transaction, the Python listener runs and exits, psql reads a status.
#[tokio::test]
async fn the_client_examples_block_runs_as_written() {
    let (line, block) = sh_blocks()
        .into_iter()
        .find(|(_, b)| b.contains("ecosystem/clients/setup.sh") && b.contains("node send.js"))
        .expect("the README's client examples block");
    let db = TestDb::new().await.unwrap();
    let readme_url = "postgres://postgres@127.0.0.1:5432/pgwa";
    assert!(block.contains(readme_url), "README line {line}: the block no longer sets {readme_url}");
    let script = block.replace(readme_url, &db.url);
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(ROOT)
        .env_remove("DATABASE_URL")
        .env_remove("PGWA_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "README line {line}: the block fails\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let sends: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.jobs WHERE session_id = 'salon-42' AND kind = 'send'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(sends, 1, "{stdout}");
    assert!(stdout.contains("salon-42"), "{stdout}");
    db.drop_now().await.unwrap();
}
