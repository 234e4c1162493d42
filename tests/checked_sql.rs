//! Every statement in pgwa-pg is checked at compile time (sqlx::query! and friends,
//! against the schema, .sqlx/ committed) except the few whose text cannot be known when
//! pgwa is built. This keeps it so: an unchecked call outside the list below fails here,
//! naming the file and line.

use std::path::Path;

/// Files allowed unchecked statements, with how many and why.
const UNCHECKED: &[(&str, usize, &str)] = &[
    // CREATE DATABASE with the configured name: DDL, identifiers cannot be parameters.
    ("connect.rs", 1, "CREATE DATABASE <configured name>"),
    // The queue pool's session settings: a fixed utility statement, nothing to check.
    ("lib.rs", 1, "SET on the queue pool's connections"),
    // sqlx's ledgers are not in the schema the checks run against; sql/ files are DDL.
    ("migrate.rs", 5, "migration ledgers, CREATE SCHEMA, applying sql/"),
    // Baileys tables named by the user (quoted identifiers).
    ("import/source.rs", 1, "reading a Baileys table the user names"),
    // Scratch databases for benchmarks: CREATE/DROP DATABASE, and the schema variants
    // (indexes and triggers dropped, the message-id table added, an operator's files for
    // `pgwa bench --schema-variant`) and VACUUM that the benchmarks run in them, and a
    // variant's own completion and receipt statements, over tables only that variant creates.
    ("bench.rs", 5, "benchmark scratch databases, their schema variants and a variant's completion and receipt statements"),
];

fn unchecked_calls(text: &str) -> Vec<usize> {
    let calls = ["sqlx::query(", "sqlx::query_as(", "sqlx::query_scalar(", "sqlx::raw_sql(", "query_as::<", "QueryBuilder"];
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//") && calls.iter().any(|c| l.contains(c)))
        .map(|(i, _)| i + 1)
        .collect()
}

fn visit(dir: &Path, root: &Path, out: &mut Vec<(String, Vec<usize>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            let lines = unchecked_calls(&std::fs::read_to_string(&path).unwrap());
            if !lines.is_empty() {
                out.push((rel, lines));
            }
        }
    }
}

#[test]
fn every_statement_is_checked_at_compile_time_but_the_listed_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/pg/src");
    let mut found = Vec::new();
    visit(&root, &root, &mut found);
    found.sort();
    for (file, lines) in &found {
        let allowed = UNCHECKED.iter().find(|(f, _, _)| f == file);
        match allowed {
            None => panic!(
                "crates/pg/src/{file} lines {lines:?}: unchecked SQL; use sqlx::query!/query_as!/query_scalar! \
                 (then bash .ci/sqlx-prepare), or add the file here with the reason its text cannot be checked"
            ),
            Some((_, n, why)) => assert!(
                lines.len() <= *n,
                "crates/pg/src/{file} lines {lines:?}: {} unchecked statements, {n} allowed ({why})",
                lines.len()
            ),
        }
    }
    // The check can fail: the list's entries are there.
    for (file, _, why) in UNCHECKED {
        assert!(found.iter().any(|(f, _)| f == file), "{file} no longer has unchecked SQL ({why}): remove it from the list");
    }
}

#[test]
fn the_scan_finds_an_unchecked_call() {
    let sample = "let x = sqlx::query(\"SELECT 1\").fetch_one(p);\n// sqlx::query( in a comment\nsqlx::query!(\"SELECT 1\");";
    assert_eq!(unchecked_calls(sample), [1]);
}
