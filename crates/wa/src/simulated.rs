//! A simulated WhatsApp side: sessions connect at once, sends are acked after a
//! configurable latency, and faults are injected by configuration (a failure rate) or by
//! the message itself, so tests in other processes can steer a worker:
//!
//! `payload.sim = {"fail_attempts": 2}`   fail the first two attempts (retryable)
//! `payload.sim = {"fail": "reason"}`     the server refuses the message for good
//! `payload.sim = {"fault": "drop_connection" | "logout" | "stream_replaced" | "outdated"
//!                         | "ban" | "connect_failure"}`
//!                                        the connection suffers that fault instead of acking
//!                                        (`"ban_secs"`: ban length, default 2; `"failures"`:
//!                                        how many reconnects fail after connect_failure)
//! `payload.sim = {"fault": "bad_mac" | "bad_decrypt"}`
//!                                        an inbound message from the recipient cannot be
//!                                        decrypted; the send itself is acked
//! `payload.sim = {"ack_delay_ms": 50}`   this message's ack takes that long
//! `payload.sim = {"receipts": ["delivered", "read"]}`  receipts follow the ack

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use rand::Rng;

use pgwa_core::config::SimulatedConfig;
use pgwa_core::wa::{
    EventSink, OutboundMessage, ReceiptKind, SendAck, SendError, SessionSpec, TaggedEvent, WaError, WaEvent, WaSession, WhatsApp,
};

pub struct SimulatedWhatsApp {
    cfg: SimulatedConfig,
    log: Option<Arc<Mutex<std::fs::File>>>,
    sends: Arc<AtomicU64>,
}

impl SimulatedWhatsApp {
    pub fn new(cfg: SimulatedConfig) -> std::io::Result<Self> {
        let log = match &cfg.sent_log {
            Some(path) => {
                let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
                Some(Arc::new(Mutex::new(f)))
            }
            None => None,
        };
        Ok(Self { cfg, log, sends: Arc::new(AtomicU64::new(0)) })
    }

    /// Sends acked so far by this process.
    pub fn sends(&self) -> u64 {
        self.sends.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl WhatsApp for SimulatedWhatsApp {
    fn backend(&self) -> pgwa_core::config::Backend {
        pgwa_core::config::Backend::Simulated
    }

    async fn open(&self, spec: SessionSpec, events: EventSink) -> Result<Arc<dyn WaSession>, WaError> {
        let session = Arc::new(SimSession {
            spec,
            cfg: self.cfg.clone(),
            events,
            connected: AtomicBool::new(false),
            failing_connects: AtomicU64::new(0),
            log: self.log.clone(),
            sends: self.sends.clone(),
        });
        session.clone().connect_later();
        Ok(session)
    }
}

struct SimSession {
    spec: SessionSpec,
    cfg: SimulatedConfig,
    events: EventSink,
    connected: AtomicBool,
    /// Reconnect attempts left to fail (fault connect_failure).
    failing_connects: AtomicU64,
    log: Option<Arc<Mutex<std::fs::File>>>,
    sends: Arc<AtomicU64>,
}

impl SimSession {
    fn emit(&self, event: WaEvent) {
        let _ = self.events.send(TaggedEvent { session: self.spec.id.clone(), epoch: self.spec.epoch, event });
    }

    fn connect_later(self: Arc<Self>) {
        let delay = Duration::from_millis(self.cfg.connect_latency_ms);
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.connected.store(true, Ordering::SeqCst);
            self.emit(WaEvent::Connected { jid: None, push_name: Some(format!("sim {}", self.spec.id)) });
        });
    }

    fn fault(&self, name: &str, sim: Option<&serde_json::Value>) -> SendError {
        self.connected.store(false, Ordering::SeqCst);
        let get = |k: &str, d: u64| sim.and_then(|s| s.get(k)).and_then(|v| v.as_u64()).unwrap_or(d);
        match name {
            "logout" => self.emit(WaEvent::LoggedOut { reason: "simulated: device removed".into() }),
            "stream_replaced" => self.emit(WaEvent::StreamReplaced),
            "outdated" => self.emit(WaEvent::ClientOutdated),
            "ban" => self.emit(WaEvent::TemporaryBan {
                until: Utc::now() + chrono::Duration::seconds(get("ban_secs", 2) as i64),
                reason: "simulated: temporary ban".into(),
            }),
            "connect_failure" => {
                self.failing_connects.store(get("failures", 1), Ordering::SeqCst);
                self.emit(WaEvent::Disconnected { reason: "simulated: connection dropped".into() });
            }
            _ => self.emit(WaEvent::Disconnected { reason: "simulated: connection dropped".into() }),
        }
        SendError::Retryable(format!("simulated fault: {name}"))
    }

    fn record(&self, msg: &OutboundMessage) {
        self.sends.fetch_add(1, Ordering::Relaxed);
        if let Some(log) = &self.log {
            let line = format!("{} {} {} {} {}\n", self.spec.id, msg.chat, msg.message_id, msg.job_id, std::process::id());
            if let Ok(mut f) = log.lock() {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }
}

#[async_trait]
impl WaSession for SimSession {
    async fn send(&self, msg: &OutboundMessage) -> Result<SendAck, SendError> {
        if !self.connected.load(Ordering::SeqCst) {
            return Err(SendError::NotConnected);
        }
        let sim = msg.payload.get("sim");
        let get_u64 = |k: &str| sim.and_then(|s| s.get(k)).and_then(|v| v.as_u64());
        if let Some(n) = get_u64("fail_attempts")
            && (msg.attempt as u64) <= n
        {
            return Err(SendError::Retryable(format!("simulated failure on attempt {}", msg.attempt)));
        }
        if let Some(reason) = sim.and_then(|s| s.get("fail")).and_then(|v| v.as_str()) {
            return Err(SendError::Permanent(format!("simulated refusal: {reason}")));
        }
        match sim.and_then(|s| s.get("fault")).and_then(|v| v.as_str()) {
            Some(kind @ ("bad_mac" | "bad_decrypt")) => {
                self.emit(WaEvent::Undecryptable { peer: msg.chat.clone(), bad_mac: kind == "bad_mac" })
            }
            Some(name) if msg.attempt == 1 => return Err(self.fault(name, sim)),
            _ => {}
        }
        if self.cfg.send_failure_rate > 0.0 && rand::rng().random_bool(self.cfg.send_failure_rate) {
            return Err(SendError::Retryable("simulated random failure".into()));
        }
        let delay = get_u64("ack_delay_ms").unwrap_or(self.cfg.ack_latency_ms);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.record(msg);
        let at = Utc::now();
        if let Some(receipts) = sim.and_then(|s| s.get("receipts")).and_then(|v| v.as_array()) {
            for r in receipts.iter().filter_map(|r| r.as_str()) {
                let kind = if r == "read" { ReceiptKind::Read } else { ReceiptKind::Delivered };
                self.emit(WaEvent::Receipt { message_id: msg.message_id.clone(), kind, at: Utc::now() });
            }
        }
        Ok(SendAck { message_id: msg.message_id.clone(), at })
    }

    async fn reconnect(&self) -> Result<(), WaError> {
        self.connected.store(false, Ordering::SeqCst);
        let left = self.failing_connects.load(Ordering::SeqCst);
        if left > 0 {
            self.failing_connects.store(left - 1, Ordering::SeqCst);
            let reason = "simulated: connection refused".to_string();
            self.emit(WaEvent::ConnectFailure { reason: reason.clone() });
            return Err(WaError::Client(reason));
        }
        self.connected.store(true, Ordering::SeqCst);
        self.emit(WaEvent::Connected { jid: None, push_name: Some(format!("sim {}", self.spec.id)) });
        Ok(())
    }

    async fn close(&self, _logout: bool) -> Result<(), WaError> {
        self.connected.store(false, Ordering::SeqCst);
        Ok(())
    }
}
