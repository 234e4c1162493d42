//! `webhook`: POSTs one event to one webhook, signed as Standard Webhooks does
//! (`webhook_signature`). The URL and secret are read from wa.webhooks when the
//! delivery runs. The request goes through `pgwa_net`'s guard: an app chose the URL, so
//! only public addresses are reached unless `webhooks.allow` lists more.
//!
//! Outcomes: a 2xx completes the job. 410 Gone turns the webhook off and fails the
//! delivery (the receiver asked for no more). A refused address fails it for good. Any
//! other answer, no answer, or a redirect (not followed: a webhook URL should be the
//! final one) is retried with the queue's backoff, sooner or later as a 429/503's
//! `Retry-After` says, and the job is dead when its attempts run out; wa.retry_job or
//! the console sends it again, with the same `webhook-id`.

use std::time::{Duration, Instant};

use serde_json::json;
use url::Url;

use super::{Handler, JobCtx};
use crate::webhook_signature::{key_of, sign};
use pgwa_core::config::WebhooksConfig;
use pgwa_core::job::Outcome;
use pgwa_core::job::args::WebhookArgs;
use pgwa_core::metrics as m;
use pgwa_net::{Clients, Failure};
use pgwa_pg::webhooks::Endpoint;

pub struct Webhook;

impl Handler for Webhook {
    type Args = WebhookArgs;
    async fn run(ctx: &JobCtx<'_>, args: WebhookArgs) -> Outcome {
        let endpoint = match pgwa_pg::webhooks::endpoint(ctx.pool, args.webhook).await {
            Ok(Some(e)) => e,
            Ok(None) => return Outcome::completed(json!({ "delivered": false, "skipped": "the webhook was removed" })),
            Err(e) => return Outcome::retry(format!("webhook {}: reading it failed: {e}", args.webhook)),
        };
        let (outcome, gone) = deliver(ctx.webhooks, ctx.webhook_clients, &endpoint, &args).await;
        if gone && let Err(e) = pgwa_pg::webhooks::disable(ctx.pool, args.webhook).await {
            tracing::warn!(webhook = args.webhook, error = %e, "could not disable a webhook whose receiver answered 410");
        }
        outcome
    }
}

/// The clients deliveries go through, under the operator's policy.
pub fn clients(cfg: &WebhooksConfig) -> Clients {
    Clients::new(cfg.allow.clone(), Duration::from_millis(cfg.timeout_ms), WHAT_TO_DO)
}

const WHAT_TO_DO: &str = "webhooks go to public addresses only; have the operator list this host in webhooks.allow";

/// The longest wait a receiver's `Retry-After` may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The request body: the event without the webhook's id, which the receiver knows.
fn body(args: &WebhookArgs) -> Vec<u8> {
    serde_json::to_vec(&json!({ "type": args.event_type, "timestamp": args.timestamp, "data": args.data }))
        .expect("a JSON value serializes")
}

/// Posts the event: the job's outcome, and whether the receiver said 410 Gone.
async fn deliver(cfg: &WebhooksConfig, clients: &Clients, endpoint: &Endpoint, args: &WebhookArgs) -> (Outcome, bool) {
    let hook = args.webhook;
    let Ok(url) = Url::parse(&endpoint.url) else {
        return (Outcome::fail(format!("webhook {hook}: url: not a valid URL; fix it with wa.update_webhook")), false);
    };
    let at = pgwa_net::shown(&url);
    let key = match key_of(&endpoint.secret) {
        Ok(k) => k,
        Err(e) => return (Outcome::fail(format!("webhook {hook}: {e}; set a new one with wa.rotate_webhook_secret")), false),
    };
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let refused = |why: String| {
        metrics::counter!(m::WEBHOOK_DELIVERIES, "result" => "refused").increment(1);
        (Outcome::fail(format!("webhook {hook}: {at}: {why}")), false)
    };
    let guarded = match clients.for_url(&url) {
        Ok(g) => g,
        Err(Failure::Refused(why)) => return refused(why),
        Err(Failure::Failed(why)) => return (Outcome::retry(format!("webhook {hook}: {at}: {why}")), false),
    };
    let body = body(args);
    let timestamp = chrono::Utc::now().timestamp();
    let request = guarded
        .client()
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("pgwa/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", &args.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign(&key, &args.event_id, timestamp, &body))
        .body(body);
    let t = Instant::now();
    let answered = tokio::time::timeout(timeout, guarded.send(request)).await;
    metrics::histogram!(m::WEBHOOK_LATENCY).record(t.elapsed().as_secs_f64());
    let failed = |why: String, after: Option<Duration>| {
        metrics::counter!(m::WEBHOOK_DELIVERIES, "result" => "failed").increment(1);
        (Outcome::Retry { error: format!("webhook {hook}: {at}: {why}"), after }, false)
    };
    let response = match answered {
        Err(_) => return failed(format!("no answer within {} ms", timeout.as_millis()), None),
        Ok(Err(Failure::Refused(why))) => return refused(why),
        Ok(Err(Failure::Failed(why))) => return failed(why, None),
        Ok(Ok(r)) => r,
    };
    let status = response.status().as_u16();
    match status {
        200..=299 => {
            metrics::counter!(m::WEBHOOK_DELIVERIES, "result" => "delivered").increment(1);
            let ms = t.elapsed().as_millis() as u64;
            (Outcome::completed(json!({ "delivered": true, "status": status, "ms": ms })), false)
        }
        410 => {
            metrics::counter!(m::WEBHOOK_DELIVERIES, "result" => "failed").increment(1);
            let why = format!(
                "webhook {hook}: {at}: the receiver answered 410 Gone, so the webhook is now disabled; \
                 enable it with wa.update_webhook(id, enabled => true) once the receiver wants events again"
            );
            (Outcome::fail(why), true)
        }
        300..=399 => failed(
            format!("the receiver answered a redirect (HTTP {status}), which webhooks do not follow: set the final URL"),
            None,
        ),
        _ => {
            let after = retry_after(&response).filter(|_| matches!(status, 429 | 503));
            failed(format!("the receiver answered HTTP {status}"), after)
        }
    }
}

/// A `Retry-After` in seconds, capped (an HTTP date is left to the backoff).
fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = r.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}
