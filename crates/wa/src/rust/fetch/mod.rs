//! Fetching media from a send's `payload.url`, guarded against server-side request
//! forgery by `pgwa_net` (public addresses only unless the operator allows more, the
//! address checked is the one connected to). Redirects are followed here, one guarded
//! request per hop, each hop checked like the first.
//!
//! Errors: a URL or an address refused, a body over the limit, too many redirects and
//! HTTP 4xx fail the send for good (`SendError::Permanent`); timeouts, connection
//! failures, 408, 429 and 5xx are retried. The URL is quoted only in part (no query,
//! no credentials, a short path): signed URLs carry their secret in the query.

use std::time::Duration;

use pgwa_net::{Failure, Guarded, shown, shown_raw};
use url::Url;

use pgwa_core::config::RustConfig;
use pgwa_core::fetch_policy::FetchAllow;
use pgwa_core::wa::SendError;

/// What a fetch may do.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Exceptions to the public-only rule.
    pub allow: FetchAllow,
    /// Largest body accepted (bytes); longer bodies are cut off and refused.
    pub max_bytes: usize,
    /// Time for the whole fetch, redirects included.
    pub timeout: Duration,
    /// Redirects followed at most.
    pub max_redirects: u32,
}

impl FetchPolicy {
    /// Public addresses only, with these limits.
    pub fn public_only(max_bytes: usize, timeout: Duration) -> Self {
        Self { allow: FetchAllow::default(), max_bytes, timeout, max_redirects: 5 }
    }
}

/// The limits of a media fetch from `payload.url`, from the whatsapp-rust configuration.
pub fn policy_of(cfg: &RustConfig) -> FetchPolicy {
    FetchPolicy {
        allow: cfg.media_fetch_allow.clone(),
        max_bytes: cfg.max_media_bytes,
        timeout: Duration::from_millis(cfg.media_fetch_timeout_ms),
        max_redirects: cfg.media_fetch_max_redirects,
    }
}

fn permanent(at: &str, why: impl std::fmt::Display) -> SendError {
    SendError::Permanent(format!("payload.url: {at}: {why}"))
}

fn retryable(at: &str, why: impl std::fmt::Display) -> SendError {
    SendError::Retryable(format!("payload.url: {at}: {why}"))
}

const WHAT_TO_DO: &str = "the worker fetches media only from public addresses; send the file inline as data, or have \
                          the operator list this host in whatsapp.rust.media_fetch_allow";

fn failed(at: &str, f: Failure) -> SendError {
    match f {
        Failure::Refused(why) => permanent(at, why),
        Failure::Failed(why) => retryable(at, why),
    }
}

/// Fetches `url` within `policy`: the body, or why not.
pub async fn fetch_url(url: &str, policy: &FetchPolicy) -> Result<Vec<u8>, SendError> {
    let first = Url::parse(url).map_err(|e| permanent(&shown_raw(url), format!("not a valid URL ({e})")))?;
    let at = shown(&first);
    match tokio::time::timeout(policy.timeout, follow(first, policy, &at)).await {
        Ok(got) => got,
        Err(_) => Err(retryable(&at, format!("no complete response within {} ms", policy.timeout.as_millis()))),
    }
}

async fn follow(mut url: Url, policy: &FetchPolicy, first_at: &str) -> Result<Vec<u8>, SendError> {
    let mut hop = 0;
    loop {
        let at = if hop == 0 { first_at.to_owned() } else { format!("{first_at} (redirect {hop} to {})", shown(&url)) };
        let guarded = Guarded::for_url(&url, &policy.allow, policy.timeout, WHAT_TO_DO).map_err(|f| failed(&at, f))?;
        let response = guarded.send(guarded.client().get(url.clone())).await.map_err(|f| failed(&at, f))?;
        let status = response.status().as_u16();
        match status {
            301 | 302 | 303 | 307 | 308 => {
                if hop >= policy.max_redirects {
                    return Err(permanent(&at, format!("more than {} redirects", policy.max_redirects)));
                }
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| permanent(&at, format!("HTTP {status} without a usable Location header")))?;
                url = url.join(location).map_err(|e| permanent(&at, format!("redirect to an invalid URL ({e})")))?;
                hop += 1;
            }
            200..=299 => return read_body(response, policy.max_bytes, &at).await,
            408 | 429 | 500..=599 => return Err(retryable(&at, format!("the server answered HTTP {status}"))),
            _ => return Err(permanent(&at, format!("the server answered HTTP {status}"))),
        }
    }
}

/// The body, read chunk by chunk and refused as soon as it passes `max`, so a huge file
/// is never held in memory.
async fn read_body(mut response: reqwest::Response, max: usize, at: &str) -> Result<Vec<u8>, SendError> {
    let too_large = || permanent(at, format!("larger than the {max}-byte limit"));
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| retryable(at, pgwa_net::cause(&e)))? {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
