//! Targeted key cleanup for the `key_cleanup` job kind: app-state sync keys only (first
//! step on repeated bad decrypts), one peer's Signal sessions (first step on Bad MAC), or
//! everything (wipe after logout). Each runs in one transaction and returns rows removed.
//! Every one takes the lease's [`Fence`]: a worker that lost the session (or let its
//! lease expire) deletes nothing, and nothing here deletes keys without one.

use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use super::Fence;
use pgwa_core::job::CleanupScope;

/// Runs one scope in one transaction, fenced: the transaction first locks the session
/// row FOR SHARE and checks the fence, so a takeover waits for it, and a worker that lost
/// the lease (or let it expire) gets [`LeaseLost`](pgwa_core::fence::LeaseLost) and deletes nothing.
pub async fn run_cleanup(pool: &PgPool, fence: &Fence, scope: &CleanupScope) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    let held: bool = sqlx::query_scalar(concat!(
        "SELECT EXISTS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND ",
        crate::holds!("s", "$2", "$3"),
        " FOR SHARE)"
    ))
    .bind(&fence.session)
    .bind(fence.worker)
    .bind(fence.epoch)
    .fetch_one(&mut *tx)
    .await?;
    if !held {
        return Err(fence.lost().into());
    }
    let session = fence.session.as_str();
    let n = match scope {
        CleanupScope::AppStateKeys => app_state_keys(&mut tx, session).await?,
        CleanupScope::Peer { jid } => peer_sessions(&mut tx, session, jid).await?,
        CleanupScope::All => everything(&mut tx, session).await?,
    };
    tx.commit().await?;
    Ok(n)
}

/// Every per-session store table, the auth document last.
const ALL_TABLES: &[&str] = &[
    "signal_identities",
    "signal_sessions",
    "signal_prekeys",
    "signal_signed_prekeys",
    "signal_sender_keys",
    "app_state_sync_keys",
    "app_state_versions",
    "app_state_mutation_macs",
    "sender_key_devices",
    "lid_mappings",
    "base_keys",
    "device_lists",
    "group_metadata",
    "tc_tokens",
    "sent_messages",
    "pending_inbound",
    "msg_secrets",
    "auth_state",
];

/// Removes the app-state sync keys only. whatsapp-rust asks the primary phone for any
/// key it misses when the next patch needs it, so this is safe and cheap.
pub async fn clear_app_state_keys(pool: &PgPool, fence: &Fence) -> anyhow::Result<u64> {
    run_cleanup(pool, fence, &CleanupScope::AppStateKeys).await
}

async fn app_state_keys(conn: &mut PgConnection, session: &str) -> anyhow::Result<u64> {
    let r = sqlx::query("DELETE FROM wa.app_state_sync_keys WHERE session_id = $1").bind(session).execute(conn).await?;
    Ok(r.rows_affected())
}

/// The user part of a JID: `15551234567:3@s.whatsapp.net` -> `15551234567`.
fn user_of(jid: &str) -> &str {
    let before_at = jid.split('@').next().unwrap_or(jid);
    before_at.split(':').next().unwrap_or(before_at)
}

/// Removes one peer's Signal sessions on all its devices, under its phone number and
/// its LID (whichever was given, the other found through wa.lid_mappings).
///
/// What goes and why (from whatsapp-rust 0.7's receive path, message/receive.rs): on
/// BadMac it only sends a retry receipt, like WhatsApp Web; a ratchet that keeps failing
/// is cured by a fresh session, which the peer builds from our prekeys once we have no
/// session (its next message is a pkmsg). So we delete:
/// - the sessions (`user@server` and `user:device@server` addresses);
/// - the retry base keys of those addresses (they describe the old sessions' base keys,
///   and would make the collision check compare against a dead session);
/// - the peer's devices in our sender-key distribution tracking, so our group sender
///   key is sent again through the new session (the peer may have lost it with its
///   state).
///
/// We keep its identity keys: they are the peer's long-term keys, not ratchet state;
/// dropping them would silently trust a changed identity. We keep the sender keys we
/// received from the peer: group (skmsg) decryption does not use the 1:1 ratchet, and
/// the peer redistributes its sender key when it needs to.
pub async fn clear_peer_sessions(pool: &PgPool, fence: &Fence, peer_jid: &str) -> anyhow::Result<u64> {
    run_cleanup(pool, fence, &CleanupScope::Peer { jid: peer_jid.to_string() }).await
}

async fn peer_sessions(tx: &mut PgConnection, session: &str, peer_jid: &str) -> anyhow::Result<u64> {
    let user = user_of(peer_jid);
    anyhow::ensure!(!user.is_empty(), "peer JID has no user part");
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT $2::text UNION SELECT lid FROM wa.lid_mappings WHERE session_id = $1 AND phone_number = $2
         UNION SELECT phone_number FROM wa.lid_mappings WHERE session_id = $1 AND lid = $2",
    )
    .bind(session)
    .bind(user)
    .fetch_all(&mut *tx)
    .await?;
    let mut total = 0;
    for (table, col) in [("signal_sessions", "address"), ("base_keys", "address"), ("sender_key_devices", "device_jid")] {
        let sql = format!(
            "DELETE FROM wa.{table} t USING unnest($2::text[]) AS u(name)
             WHERE t.session_id = $1 AND (starts_with(t.{col}, u.name || '@') OR starts_with(t.{col}, u.name || ':'))"
        );
        total += sqlx::query(AssertSqlSafe(sql)).bind(session).bind(&users).execute(&mut *tx).await?.rows_affected();
    }
    Ok(total)
}

/// Removes everything the session's device knows, the auth document included: after a
/// logout the number must be linked again. The wa.sessions row itself stays.
pub async fn wipe_session_state(pool: &PgPool, fence: &Fence) -> anyhow::Result<u64> {
    run_cleanup(pool, fence, &CleanupScope::All).await
}

async fn everything(tx: &mut PgConnection, session: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    for table in ALL_TABLES {
        let sql = format!("DELETE FROM wa.{table} WHERE session_id = $1");
        total += sqlx::query(AssertSqlSafe(sql)).bind(session).execute(&mut *tx).await?.rows_affected();
    }
    Ok(total)
}
