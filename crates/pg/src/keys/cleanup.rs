//! Targeted key cleanup for the `key_cleanup` job kind: app-state sync keys only (first
//! step on repeated bad decrypts), one peer's Signal sessions (first step on Bad MAC), or
//! everything (wipe after logout). Each runs in one transaction and returns rows removed.
//! Every one takes the lease's [`Fence`]: a worker that lost the session (or let its
//! lease expire) deletes nothing, and nothing here deletes keys without one.

use sqlx::{PgConnection, PgPool};

use super::Fence;
use pgwa_core::job::CleanupScope;

/// Runs one scope in one transaction, fenced: the transaction first locks the session
/// row and checks the fence, so a takeover waits for it, and a worker that lost the
/// lease (or let it expire) gets [`LeaseLost`](pgwa_core::fence::LeaseLost) and deletes
/// nothing. A wipe ([`CleanupScope::All`]) also ends the key writes of its epoch
/// (migrations/0036): a sent copy or message secret whatsapp-rust was still writing
/// from a detached task is either wiped or refused, never left behind.
pub async fn run_cleanup(pool: &PgPool, fence: &Fence, scope: &CleanupScope) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    let (session, worker, epoch) = (&fence.session, fence.worker, fence.epoch);
    let held = match scope {
        CleanupScope::All => sqlx::query_scalar!(
            r#"UPDATE wa.sessions s SET keys_wiped_epoch = $3 WHERE s.id = $1 AND wa._holds(s, $2, $3) RETURNING true AS "held!""#,
            session,
            worker,
            epoch
        )
        .fetch_optional(&mut *tx)
        .await?
        .is_some(),
        _ => {
            sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._holds(s, $2, $3) FOR SHARE) AS "held!""#,
                session,
                worker,
                epoch
            )
            .fetch_one(&mut *tx)
            .await?
        }
    };
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

/// The wipe of every per-session key table (queries/wipe_session_state.sql), public so a
/// test can check that it names every table holding a session's keys.
pub const WIPE: &str = include_str!("../../queries/wipe_session_state.sql");

/// Removes the app-state sync keys only. whatsapp-rust asks the primary phone for any
/// key it misses when the next patch needs it, so this is safe and cheap.
pub async fn clear_app_state_keys(pool: &PgPool, fence: &Fence) -> anyhow::Result<u64> {
    run_cleanup(pool, fence, &CleanupScope::AppStateKeys).await
}

async fn app_state_keys(conn: &mut PgConnection, session: &str) -> anyhow::Result<u64> {
    let r = sqlx::query!("DELETE FROM wa.app_state_sync_keys WHERE session_id = $1", session).execute(conn).await?;
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
    // The peer's user part under both its phone number and its LID; an address belongs to
    // it when it starts with `user@` or `user:` (a device).
    let removed = sqlx::query_scalar!(
        r#"WITH users AS (
                SELECT $2::text AS name
                UNION SELECT lid FROM wa.lid_mappings WHERE session_id = $1 AND phone_number = $2
                UNION SELECT phone_number FROM wa.lid_mappings WHERE session_id = $1 AND lid = $2),
            sessions AS (DELETE FROM wa.signal_sessions t USING users u WHERE t.session_id = $1
                            AND (starts_with(t.address, u.name || '@') OR starts_with(t.address, u.name || ':'))
                         RETURNING 1),
            base_keys AS (DELETE FROM wa.base_keys t USING users u WHERE t.session_id = $1
                            AND (starts_with(t.address, u.name || '@') OR starts_with(t.address, u.name || ':'))
                          RETURNING 1),
            devices AS (DELETE FROM wa.sender_key_devices t USING users u WHERE t.session_id = $1
                            AND (starts_with(t.device_jid, u.name || '@') OR starts_with(t.device_jid, u.name || ':'))
                        RETURNING 1)
         SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM base_keys) + (SELECT count(*) FROM devices) AS "removed!""#,
        session,
        user
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(removed as u64)
}

/// Removes everything the session's device knows, the auth document included: after a
/// logout the number must be linked again. The wa.sessions row itself stays.
pub async fn wipe_session_state(pool: &PgPool, fence: &Fence) -> anyhow::Result<u64> {
    run_cleanup(pool, fence, &CleanupScope::All).await
}

async fn everything(tx: &mut PgConnection, session: &str) -> anyhow::Result<u64> {
    let removed = sqlx::query_file_scalar!("queries/wipe_session_state.sql", session).fetch_one(tx).await?;
    Ok(removed as u64)
}
