// sqlx::migrate! embeds migrations/ at compile time; without this, adding a migration
// file would not rebuild the crate until some Rust source changed.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
    println!("cargo:rerun-if-changed=../../sql");
}
