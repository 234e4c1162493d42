//! The WhatsApp trait on whatsapp-rust 0.7: one client per owned session, storage on
//! Postgres fenced by the lease (`pgwa_pg::keys::PgBackend`), inbound committed to
//! wa.inbox before the server is acked (`inbound`), sends completed on the server ack
//! (`acks`), events mapped to `WaEvent` (`events`; the decisions on Bad MAC, QR expiry,
//! bans and logouts are documented there).
//!
//! Reconnect policy. whatsapp-rust reconnects by itself (auto-reconnect stays on: it
//! handles 515 restarts immediately and 429 with a longer backoff, and turns itself off
//! on terminal events: logout, stream replaced, ban, outdated client, refused login).
//! The worker also schedules `reconnect()` after a Disconnected or ConnectFailure. To
//! keep the two from fighting, `reconnect()` is a nudge that acts only where the library
//! would not:
//! * the run loop ended (terminal event, QR codes exhausted) -> a new client is built;
//! * connected (Connected seen) -> `reconnect_immediately()`: an explicit restart (the
//!   reconnect job; the worker's own schedule only fires while it thinks we are down);
//! * socket up but not logged in yet -> nothing: a login is under way;
//! * down for less than `reconnect_takeover_ms` -> nothing: the library's backoff (1, 1,
//!   2, 3, 5, 8 s…) is already retrying;
//! * down longer -> the client is rebuilt, so the worker's capped backoff and circuit
//!   breaker bound the wait instead of the library's (which grows to 900 s).
//!
//! Failed attempts emit no event in whatsapp-rust; the stats watcher (`client`) turns
//! growth of `stats().reconnect_errors` into ConnectFailure, which feeds the breaker.
//!
//! close(logout): `logout()` dispatches LoggedOut itself; the session marks itself
//! closing first, so that event is suppressed (the app closed it on purpose; the worker's
//! close_session job sets the status). A client is single-use after close: `reconnect()`
//! builds a new one. A lost lease: the worker calls close(false); fenced writes made
//! during the flush are refused by Postgres, so nothing stale is written.

pub mod acks;
mod actions;
mod client;
pub mod events;
pub mod fetch;
mod groups;
pub mod inbound;
pub mod media_format;
pub mod poll;
pub mod send;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use whatsapp_rust::Jid;
use whatsapp_rust::SendOptions;

use self::acks::AckWaiters;
use self::client::{Conn, Ctx};
use self::send::{MediaSource, Quoted, Request};
use pgwa_core::config::RustConfig;
use pgwa_core::wa::{EventSink, OutboundMessage, SendAck, SendError, SessionSpec, WaError, WaSession, WhatsApp};

/// Opens sessions on whatsapp-rust.
pub struct RustWhatsApp {
    pool: pgwa_pg::PgPool,
    cfg: Arc<RustConfig>,
    sessions: Registry,
    /// Group commit of the per-message key writes of all the sessions opened here.
    key_writes: Arc<pgwa_pg::keys::Combiner>,
    /// Group commit of the inbound messages of all the sessions opened here.
    inbox: Arc<pgwa_pg::inbox::InboxWriter>,
}

/// The sessions this process has open, for calls outside the trait (key cleanup).
#[derive(Clone, Default)]
pub struct Registry(Arc<Mutex<HashMap<String, Weak<RustSession>>>>);

impl Registry {
    /// The open session `id` at `epoch`, if any.
    pub fn get(&self, id: &str, epoch: i64) -> Option<Arc<RustSession>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).and_then(Weak::upgrade).filter(|s| s.ctx.spec.epoch == epoch)
    }

    fn put(&self, s: &Arc<RustSession>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(s.ctx.spec.id.clone(), Arc::downgrade(s));
    }
}

impl RustWhatsApp {
    pub fn new(pool: pgwa_pg::PgPool, cfg: RustConfig) -> Self {
        let key_writes = pgwa_pg::keys::Combiner::new(pool.clone());
        let inbox = pgwa_pg::inbox::InboxWriter::new(pool.clone());
        Self { pool, cfg: Arc::new(cfg), sessions: Registry::default(), key_writes, inbox }
    }

    /// A handle on the open sessions (cheap to clone; keep it next to the worker).
    pub fn sessions(&self) -> Registry {
        self.sessions.clone()
    }
}

#[async_trait]
impl WhatsApp for RustWhatsApp {
    fn backend(&self) -> pgwa_core::config::Backend {
        pgwa_core::config::Backend::Whatsapp
    }

    async fn open(&self, spec: SessionSpec, events: EventSink) -> Result<Arc<dyn WaSession>, WaError> {
        let ctx = Ctx {
            pool: self.pool.clone(),
            cfg: self.cfg.clone(),
            spec,
            sink: events,
            acks: AckWaiters::default(),
            key_writes: self.key_writes.clone(),
            inbox: self.inbox.clone(),
        };
        let conn = client::start(&ctx).await?;
        let session = Arc::new(RustSession { ctx, conn: tokio::sync::Mutex::new(Some(conn)) });
        self.sessions.put(&session);
        Ok(session)
    }
}

/// One open session. `conn` is None after close().
pub struct RustSession {
    ctx: Ctx,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

mod ops;

impl RustSession {
    pub fn id(&self) -> &str {
        &self.ctx.spec.id
    }

    pub fn epoch(&self) -> i64 {
        self.ctx.spec.epoch
    }

    /// The live client, if connected and logged in.
    async fn logged_in(&self) -> Result<Arc<whatsapp_rust::Client>, SendError> {
        let guard = self.conn.lock().await;
        match guard.as_ref() {
            Some(c) if !c.ended() && c.client.is_logged_in() => Ok(c.client.clone()),
            _ => Err(SendError::NotConnected),
        }
    }

    async fn rebuild(&self, conn: &mut Option<Conn>) -> Result<(), WaError> {
        if let Some(old) = conn.take() {
            old.stop(false, Duration::from_millis(self.ctx.cfg.close_grace_ms)).await;
        }
        *conn = Some(client::start(&self.ctx).await?);
        Ok(())
    }
}

/// whatsapp-rust's send errors in our terms.
fn send_error(e: whatsapp_rust::SendError) -> SendError {
    use whatsapp_rust::SendError as E;
    match &e {
        E::NotLoggedIn => SendError::NotConnected,
        E::Client(c) if c.is_transport_unavailable() => SendError::NotConnected,
        E::InvalidRequest(why) => SendError::Permanent(format!("the message was refused before sending: {why}")),
        _ => SendError::Retryable(format!("sending failed: {e}")),
    }
}

fn parse_jid(chat: &str) -> Result<Jid, SendError> {
    chat.parse::<Jid>().map_err(|e| SendError::Permanent(format!("chat {chat:?} is not a WhatsApp JID: {e}")))
}

#[async_trait]
impl WaSession for RustSession {
    async fn send(&self, msg: &OutboundMessage) -> Result<SendAck, SendError> {
        let cfg = &self.ctx.cfg;
        let req = send::parse(&msg.payload, cfg.max_media_bytes)?;
        let to = parse_jid(&msg.chat)?;
        if msg.message_id.is_empty() {
            return Err(SendError::Permanent("the job has no message id".into()));
        }
        let client = self.logged_in().await?;
        let message = self.build(&client, &msg.chat, &msg.message_id, req).await?;
        // Registered before the send: the ack can arrive before the send call returns.
        let wait = self.ctx.acks.register(&msg.message_id);
        let opts = SendOptions::default().with_message_id(msg.message_id.clone());
        client.send_message_with_options(to, message, opts).await.map_err(send_error)?;
        wait.wait(Duration::from_millis(cfg.ack_timeout_ms)).await
    }

    async fn reconnect(&self) -> Result<(), WaError> {
        let mut guard = self.conn.lock().await;
        let Some(conn) = guard.as_ref() else { return self.rebuild(&mut guard).await };
        if conn.ended() {
            return self.rebuild(&mut guard).await;
        }
        if conn.flags.up.load(std::sync::atomic::Ordering::SeqCst) {
            self.ctx.acks.fail_all();
            conn.client.reconnect_immediately().await;
            return Ok(());
        }
        if conn.client.is_connected() {
            return Ok(()); // a login is under way
        }
        let takeover = Duration::from_millis(self.ctx.cfg.reconnect_takeover_ms);
        if conn.flags.down_for().is_some_and(|d| d >= takeover) {
            return self.rebuild(&mut guard).await;
        }
        Ok(())
    }

    async fn chat_state(&self, chat: &str, state: pgwa_core::wa::ChatState) -> Result<(), SendError> {
        use pgwa_core::wa::ChatState;
        use whatsapp_rust::features::ChatStateType;
        let to = parse_jid(chat)?;
        let client = self.logged_in().await?;
        let state = match state {
            ChatState::Composing => ChatStateType::Composing,
            ChatState::Recording => ChatStateType::Recording,
            ChatState::Paused => ChatStateType::Paused,
        };
        client.chatstate().send(&to, state).await.map_err(|e| SendError::Retryable(format!("chat state to {chat}: {e}")))
    }

    async fn mark_read(&self, chat: &str, sender: Option<&str>, message_ids: &[String]) -> Result<(), SendError> {
        self.send_read_receipts(chat, sender, message_ids).await
    }

    async fn download_media(&self, kind: &str, media: &serde_json::Value) -> Result<Vec<u8>, SendError> {
        self.fetch_media(kind, media).await
    }

    async fn reject_call(&self, call: &pgwa_core::wa::IncomingCall) -> Result<(), SendError> {
        self.decline_call(call).await
    }

    async fn check_numbers(&self, phones: &[String]) -> Result<Vec<pgwa_core::wa::NumberCheck>, SendError> {
        self.ask_numbers(phones).await
    }

    async fn create_group(&self, subject: &str, participants: &[String]) -> Result<pgwa_core::wa::GroupInfo, SendError> {
        self.new_group(subject, participants).await
    }

    async fn group_info(&self, group: &str) -> Result<pgwa_core::wa::GroupInfo, SendError> {
        self.read_group(group).await
    }

    async fn change_members(
        &self,
        group: &str,
        change: pgwa_core::wa::MemberChange,
        participants: &[String],
    ) -> Result<Vec<pgwa_core::wa::MemberResult>, SendError> {
        self.members(group, change, participants).await
    }

    async fn group_invite_link(&self, group: &str) -> Result<String, SendError> {
        self.invite_link(group).await
    }

    async fn leave_group(&self, group: &str) -> Result<(), SendError> {
        self.leave(group).await
    }

    async fn clear_keys(&self, scope: &pgwa_core::job::CleanupScope) -> Result<Option<u64>, WaError> {
        use pgwa_core::job::CleanupScope;
        match scope {
            // Through the client's signal API, so its session cache and the store agree.
            CleanupScope::Peer { jid } => self.delete_peer_sessions(jid).await.map(|n| Some(n as u64)),
            // Deletes the rows, then reconnects: the client drops its key cache on reconnect.
            CleanupScope::AppStateKeys => self.clear_app_state_keys().await.map(Some),
            // The caller closes the connection before wiping everything.
            CleanupScope::All => Ok(None),
        }
    }

    async fn close(&self, logout: bool) -> Result<(), WaError> {
        let grace = Duration::from_millis(self.ctx.cfg.close_grace_ms);
        let mut guard = self.conn.lock().await;
        let Some(c) = guard.as_ref() else { return Ok(()) };
        // The unlink request needs a logged-in socket, else the phone keeps listing the
        // device: a stopped client is restarted for it, and the login waited for. A
        // device that was never linked has nothing to unlink.
        if logout && c.client.pn().is_some() && !c.client.is_logged_in() {
            if c.ended() {
                self.rebuild(&mut guard).await?;
            }
            let Some(c) = guard.as_ref() else { return Ok(()) };
            let deadline = tokio::time::Instant::now() + grace;
            while !c.client.is_logged_in() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if !c.client.is_logged_in() {
                // Keep the client: the close_session job retries, and must not find the
                // session closed and report a logout that never reached WhatsApp.
                return Err(WaError::NotLoggedIn);
            }
        }
        let Some(c) = guard.take() else { return Ok(()) };
        drop(guard);
        self.ctx.acks.fail_all();
        let server_logout = c.flags.server_logout.load(std::sync::atomic::Ordering::SeqCst);
        c.stop(logout, grace).await;
        if server_logout {
            self.wipe_dead_identity().await?;
        }
        Ok(())
    }
}

impl RustSession {
    /// The server logged the device out (401, 516, device removed): WhatsApp never
    /// accepts that identity again, and whatsapp-rust keeps it in the store, so the next
    /// start would log in with it and be refused forever instead of showing a QR. The
    /// worker closes the session (we run after the client stopped, so no late flush
    /// writes the keys back) before it releases the lease, so the wipe is fenced by a
    /// lease we still hold. Found by the loopback e2e tests (`wa.start_session` after a
    /// 401 never offered a QR). Bad MAC at the limit wipes too, in the worker's policy.
    async fn wipe_dead_identity(&self) -> Result<(), WaError> {
        use pgwa_core::job::CleanupScope;
        use pgwa_pg::keys::cleanup::run_cleanup;
        let spec = &self.ctx.spec;
        let n = run_cleanup(&self.ctx.pool, &spec.fence(), &CleanupScope::All).await.map_err(|e| {
            WaError::Store(format!("session {}: wiping the keys of the logged-out device failed: {e:#}", spec.id))
        })?;
        tracing::info!(session = %spec.id, rows = n, "logged out by the server: keys wiped, the next start links anew");
        Ok(())
    }
}

/// Our own JID where a message key names its author: in groups only.
fn own_participant(client: &whatsapp_rust::Client, chat: &str) -> Option<String> {
    chat.ends_with("@g.us").then(|| client.pn().map(|j| j.to_non_ad_string())).flatten()
}

/// Builds the waproto message of a request (lookups, media fetch and upload included).
impl RustSession {
    async fn build(
        &self,
        client: &Arc<whatsapp_rust::Client>,
        chat: &str,
        message_id: &str,
        req: Request,
    ) -> Result<whatsapp_rust::waproto::whatsapp::Message, SendError> {
        let cfg = &self.ctx.cfg;
        match req {
            Request::Poll { question, options, selectable } => {
                let secret = self.poll_secret(chat, message_id).await?;
                Ok(poll::message(&question, &options, selectable, secret))
            }
            Request::Text { text, reply_to, mentions } => {
                let quoted = self.quoted(client, chat, reply_to).await?;
                Ok(send::text_message(&text, quoted.as_ref(), &mentions))
            }
            Request::Location { latitude, longitude, name, address, reply_to } => {
                let quoted = self.quoted(client, chat, reply_to).await?;
                Ok(send::location_message(latitude, longitude, name, address, quoted.as_ref()))
            }
            Request::Contact { display_name, phones, reply_to } => {
                let quoted = self.quoted(client, chat, reply_to).await?;
                Ok(send::contact_message(&display_name, &phones, quoted.as_ref()))
            }
            Request::Edit { target, text } => {
                let now = chrono::Utc::now().timestamp_millis();
                Ok(send::edit_message(chat, &target, &text, own_participant(client, chat), now))
            }
            Request::Revoke { target } => Ok(send::revoke_message(chat, &target, own_participant(client, chat))),
            Request::Reaction { target, emoji, from_me } => {
                let found = self.lookup(&target).await?;
                let from_me = from_me.or(found.as_ref().map(|t| t.from_me)).unwrap_or(false);
                // The author is named only in groups (WhatsApp's key format).
                let participant = chat.ends_with("@g.us").then(|| found.and_then(|t| t.sender)).flatten();
                Ok(send::reaction_message(chat, &target, &emoji, from_me, participant, chrono::Utc::now().timestamp_millis()))
            }
            Request::Media(mut m) => {
                let bytes = match &m.source {
                    MediaSource::Bytes(b) => b.clone(),
                    MediaSource::Url(u) => {
                        let b = fetch::fetch_url(u, &fetch::policy_of(cfg)).await?;
                        send::check_media(&m, &b, cfg.max_media_bytes)?;
                        b
                    }
                };
                let mimetype = send::media_mimetype(&m, &bytes);
                if m.kind == send::MediaKind::Voice && m.seconds.is_none() {
                    m.seconds = media_format::ogg_opus_seconds(&bytes);
                }
                let sticker = (m.kind == send::MediaKind::Sticker).then(|| media_format::webp_info(&bytes)).flatten();
                let quoted = self.quoted(client, chat, m.reply_to.clone()).await?;
                let upload = client
                    .upload(bytes, m.kind.media_type(), whatsapp_rust::UploadOptions::default())
                    .await
                    .map_err(|e| SendError::Retryable(format!("media upload failed: {e:#}")))?;
                Ok(send::media_message(&m, mimetype, upload, quoted.as_ref(), sticker))
            }
        }
    }

    /// The secret of poll `message_id`: made now on its first attempt, the stored one on
    /// a retry (the recipient may already hold the first attempt's).
    async fn poll_secret(&self, chat: &str, message_id: &str) -> Result<Vec<u8>, SendError> {
        use rand::RngCore;
        let mut fresh = vec![0u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        match pgwa_pg::polls::secret(&self.ctx.pool, &self.ctx.spec.fence(), chat, message_id, &fresh).await {
            Ok(Some(secret)) => Ok(secret),
            Ok(None) => Err(SendError::NotConnected),
            Err(e) => Err(SendError::Retryable(format!("keeping the poll's secret: {e}"))),
        }
    }

    async fn lookup(&self, id: &str) -> Result<Option<pgwa_pg::messages::Target>, SendError> {
        pgwa_pg::messages::lookup_target(&self.ctx.pool, &self.ctx.spec.id, id)
            .await
            .map_err(|e| SendError::Retryable(format!("looking up message {id}: {e}")))
    }

    async fn quoted(
        &self,
        client: &Arc<whatsapp_rust::Client>,
        chat: &str,
        reply_to: Option<String>,
    ) -> Result<Option<Quoted>, SendError> {
        let Some(id) = reply_to else { return Ok(None) };
        let found = self.lookup(&id).await?;
        let own = client.pn().map(|j| j.to_non_ad_string()).unwrap_or_default();
        let (participant, text) = match found {
            Some(t) if !t.from_me => (t.sender.unwrap_or_default(), t.text),
            Some(t) => (own, t.text),
            // Unknown to us (sent before pgwa, or pruned): in a 1:1 chat the peer wrote it.
            None => (chat.to_owned(), None),
        };
        Ok(Some(Quoted { id, participant, text }))
    }
}
