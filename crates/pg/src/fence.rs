//! The fence's SQL, written once. Every statement that writes for a session on behalf of
//! a worker tests [`holds!`] on the session's row in the same statement (see
//! `pgwa_core::fence`); statements that also read-modify other tables lock that row `FOR
//! SHARE` so a takeover waits for them.

/// `<s>` is held by worker `<worker>` at epoch `<epoch>` with an unexpired lease. The
/// arguments are SQL text: the alias of `wa.sessions` and two expressions.
#[macro_export]
macro_rules! holds {
    ($s:literal, $worker:literal, $epoch:literal) => {
        concat!("(", $s, ".owner_id = ", $worker, " AND ", $s, ".epoch = ", $epoch, " AND ", $s, ".lease_expires_at > now())")
    };
}

/// `<s>` has no live holder: offline writers (the importer, tests, benchmarks) may write
/// keys only then, so they can never change what a running session uses.
#[macro_export]
macro_rules! unheld {
    ($s:literal) => {
        concat!("(", $s, ".owner_id IS NULL OR coalesce(", $s, ".lease_expires_at <= now(), true))")
    };
}

/// The fence of statements whose parameters start `$1` = session, `$2` = worker, `$3` =
/// epoch, on `wa.sessions` without an alias.
pub const HELD: &str = concat!("id = $1 AND ", holds!("wa.sessions", "$2", "$3"));
