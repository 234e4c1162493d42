//! Maps what the WhatsApp side reports to session statuses and actions. Every write is
//! fenced by the epoch of the connection that produced the event, so a late event from a
//! closed connection cannot touch the session's next life.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::Shared;
use super::slots::Drain;
use pgwa_core::fence::Fence;
use pgwa_core::session::SessionStatus;
use pgwa_core::wa::{TaggedEvent, WaEvent};
use pgwa_pg::sessions;

pub async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<TaggedEvent>) {
    while let Some(ev) = rx.recv().await {
        if let Err(e) = handle(&shared, ev).await {
            tracing::warn!(error = %e, "handling a session event failed");
        }
    }
}

async fn handle(shared: &Arc<Shared>, ev: TaggedEvent) -> anyhow::Result<()> {
    let fence = Fence { worker: shared.id, session: ev.session.clone(), epoch: ev.epoch };
    if shared.slots.get(&ev.session).map(|s| s.epoch) != Some(ev.epoch) {
        return Ok(()); // from a connection we no longer hold
    }
    let pool = &shared.pool;
    let kept = match ev.event {
        WaEvent::Connected { jid, push_name } => {
            let ok = sessions::mark_connected(pool, &fence, jid.as_deref(), push_name.as_deref()).await?;
            // The session id, never the JID: it carries the phone number.
            tracing::info!(session = %ev.session, "session connected");
            shared.slots.update(&ev.session, ev.epoch, |s| {
                s.connected = true;
                s.reconnects = 0;
            });
            shared.mark_hot([ev.session.as_str()]);
            ok
        }
        WaEvent::Disconnected { reason } => {
            shared.slots.update(&ev.session, ev.epoch, |s| s.connected = false);
            let ok = sessions::set_status(pool, &fence, SessionStatus::Reconnecting, Some(&reason), None).await?;
            super::reconnects::schedule(shared, &ev.session, ev.epoch);
            ok
        }
        WaEvent::LoggedOut { reason } => {
            park(shared, &fence, SessionStatus::LoggedOut, &reason).await?;
            true
        }
        WaEvent::StreamReplaced => {
            // Another client took the number. Reconnecting would fight it (440 loops).
            park(shared, &fence, SessionStatus::Conflict, "stream replaced: another client is using this number").await?;
            true
        }
        WaEvent::TemporaryBan { until, reason } => {
            shared.slots.update(&ev.session, ev.epoch, |s| s.connected = false);
            sessions::set_status(pool, &fence, SessionStatus::Banned, Some(&reason), Some(until)).await?;
            shared.slots.drain(&ev.session, Drain::as_written());
            true
        }
        WaEvent::ConnectFailure { reason } => super::policy::connect_failed(shared, &fence, &reason).await?,
        WaEvent::Undecryptable { peer, bad_mac } => super::policy::undecryptable(shared, &fence, &peer, bad_mac).await?,
        WaEvent::ClientOutdated => {
            park(shared, &fence, SessionStatus::Failed, "the WhatsApp server refuses this client version: upgrade pgwa").await?;
            true
        }
        WaEvent::Qr { code, expires_at } => {
            metrics::counter!(pgwa_core::metrics::QR_CODES).increment(1);
            sessions::publish_qr(pool, &fence, &code, expires_at).await?
        }
        WaEvent::PairCode { code, expires_at } => sessions::publish_pair_code(pool, &fence, &code, expires_at).await?,
        WaEvent::QrExhausted => {
            let reason = "no QR code was scanned in time; call wa.start_session to try again";
            sessions::set_desired_stopped(pool, &fence, reason).await?;
            park(shared, &fence, SessionStatus::Stopped, reason).await?;
            true
        }
        WaEvent::Paired { jid, lid, phone, push_name } => {
            sessions::mark_paired(pool, &fence, &jid, lid.as_deref(), phone.as_deref(), push_name.as_deref()).await?
        }
        WaEvent::Receipt { message_id, kind, at } => {
            shared.announcer.receipt(pgwa_pg::receipts::Receipt { fence, message_id, kind, at });
            true
        }
        WaEvent::ChatState(c) => pgwa_pg::contacts::record_chat_state(pool, &fence, &c).await?,
        WaEvent::IncomingCall(c) => incoming_call(shared, &fence, &c).await?,
        WaEvent::GroupChanged(g) => group_changed(shared, &fence, &g).await?,
        WaEvent::Error { message } => {
            pgwa_core::metrics::error("session");
            sessions::record_error(pool, &fence, &message).await?
        }
    };
    if !kept {
        tracing::warn!(session = %ev.session, "session write refused by the fence; checking leases");
        shared.wake_lease.notify_one();
    }
    Ok(())
}

/// Records a call and, as wa.policy.reject_calls says, declines it at once so the caller
/// is not left ringing. Returns false when the fence refused the record.
async fn incoming_call(shared: &Arc<Shared>, fence: &Fence, c: &pgwa_core::wa::IncomingCall) -> anyhow::Result<bool> {
    use pgwa_pg::calls;
    let Some(call) = calls::record(&shared.pool, fence, c).await? else {
        return Ok(sessions::still_held(&shared.pool, fence).await?);
    };
    if !call.reject {
        return Ok(true);
    }
    let outcome = match shared.slots.client_for(&fence.session, fence.epoch) {
        Ok(client) => client.reject_call(c).await.map_err(|e| e.to_string()),
        Err(_) => Err("the session's connection was gone".to_string()),
    };
    if let Err(e) = &outcome {
        tracing::warn!(session = %fence.session, call = call.id, error = %e, "rejecting a call failed");
    }
    Ok(calls::set_outcome(&shared.pool, fence, call.id, outcome.as_ref().map(|_| ()).map_err(String::as_str)).await?)
}

/// Keeps wa.groups current. A notification is answered by reading the group from the
/// server (one query per change; changes are rare), which also brings in the groups
/// someone else created or added this number to. Removed, the row stays with left_at.
async fn group_changed(shared: &Arc<Shared>, fence: &Fence, g: &pgwa_core::wa::GroupChanged) -> anyhow::Result<bool> {
    use pgwa_pg::groups;
    if g.removed_me {
        return Ok(groups::record_left(&shared.pool, fence, &g.group).await?);
    }
    let Ok(client) = shared.slots.client_for(&fence.session, fence.epoch) else { return Ok(true) };
    match client.group_info(&g.group).await {
        Ok(info) => Ok(groups::record_group(&shared.pool, fence, &info, None).await?),
        Err(e) => {
            tracing::warn!(session = %fence.session, action = %g.action, error = %e, "reading a changed group failed");
            Ok(true)
        }
    }
}

/// A terminal status: no reconnect; the session is released once its running jobs are
/// recorded and is not claimed again until the app calls wa.start_session.
async fn park(shared: &Arc<Shared>, fence: &Fence, status: SessionStatus, reason: &str) -> anyhow::Result<()> {
    shared.slots.update(&fence.session, fence.epoch, |s| s.connected = false);
    sessions::set_status(&shared.pool, fence, status, Some(reason), None).await?;
    shared.slots.drain(&fence.session, Drain::as_written());
    shared.wake_lease.notify_one();
    Ok(())
}
