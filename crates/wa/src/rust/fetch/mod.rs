//! Fetching media from a send's `payload.url`, guarded against server-side request
//! forgery: the worker connects only to public addresses (`policy`) unless the operator
//! allows more, and never follows the URL anywhere it would not fetch directly.
//!
//! The address checked is the address connected to. Host names are resolved by our own
//! resolver inside the HTTP client, which hands the connector only the permitted
//! addresses, so a DNS answer that changes between a check and the connect (rebinding)
//! has nothing to slip through. The client skips resolvers for IP literals, so those are
//! checked before the request. Redirects are followed here, one request per hop, each
//! hop checked like the first. Environment proxies are ignored: through a proxy the
//! proxy would resolve and connect, unchecked.
//!
//! Errors: a URL or an address refused, a body over the limit, too many redirects and
//! HTTP 4xx fail the send for good (`SendError::Permanent`); timeouts, connection
//! failures, 408, 429 and 5xx are retried. The URL is quoted only in part (no query,
//! no credentials, a short path): signed URLs carry their secret in the query.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
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

/// The URL as errors may quote it: scheme, host, port and the start of the path; no
/// credentials, query or fragment.
/// The limits of a media fetch from `payload.url`, from the whatsapp-rust configuration.
pub fn policy_of(cfg: &RustConfig) -> FetchPolicy {
    FetchPolicy {
        allow: cfg.media_fetch_allow.clone(),
        max_bytes: cfg.max_media_bytes,
        timeout: Duration::from_millis(cfg.media_fetch_timeout_ms),
        max_redirects: cfg.media_fetch_max_redirects,
    }
}

pub fn shown(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = url.path();
    let mut out = format!("{}://{host}{port}", url.scheme());
    if path.chars().count() > 16 {
        out.extend(path.chars().take(16));
        out.push('…');
    } else {
        out.push_str(path);
    }
    if url.query().is_some() {
        out.push_str("?…");
    }
    out
}

fn shown_raw(s: &str) -> String {
    let head: String = s.chars().take(16).collect();
    if head.len() < s.len() { format!("{head}…") } else { head }
}

fn permanent(at: &str, why: impl std::fmt::Display) -> SendError {
    SendError::Permanent(format!("payload.url: {at}: {why}"))
}

fn retryable(at: &str, why: impl std::fmt::Display) -> SendError {
    SendError::Retryable(format!("payload.url: {at}: {why}"))
}

const WHAT_TO_DO: &str = "the worker fetches media only from public addresses; send the file inline as data, or have \
                          the operator list this host in whatsapp.rust.media_fetch_allow";

/// Refuses what no request should be made for: other schemes, credentials in the URL,
/// an IP literal in a refused range. Returns the port and whether the host is allowed.
fn check_target(url: &Url, allow: &FetchAllow, at: &str) -> Result<(u16, bool), SendError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(permanent(at, format!("scheme {:?} is not http or https", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(permanent(at, "credentials in the URL (user:password@) are refused; the worker sends none"));
    }
    let port = url.port_or_known_default().unwrap_or(0);
    match url.host() {
        None => Err(permanent(at, "the URL has no host")),
        Some(url::Host::Domain(d)) => Ok((port, allow.allows_host(d, port))),
        Some(url::Host::Ipv4(ip)) => literal(IpAddr::V4(ip), port, allow, at),
        Some(url::Host::Ipv6(ip)) => literal(IpAddr::V6(ip), port, allow, at),
    }
}

fn literal(ip: IpAddr, port: u16, allow: &FetchAllow, at: &str) -> Result<(u16, bool), SendError> {
    match allow.check(ip, port, false) {
        Ok(()) => Ok((port, false)),
        Err(range) => Err(permanent(at, format!("{ip} is a {range} address: {WHAT_TO_DO}"))),
    }
}

/// Resolves host names and keeps only the addresses the policy permits; the client
/// connects to nothing else. A refusal is also left in `refused`, so the caller can tell
/// it from a DNS failure (which is worth retrying).
struct GuardedResolver {
    allow: FetchAllow,
    port: u16,
    host_allowed: bool,
    refused: Arc<Mutex<Option<String>>>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let (allow, port, host_allowed, refused) = (self.allow.clone(), self.port, self.host_allowed, self.refused.clone());
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port)).await?.collect();
            let mut kept = Vec::with_capacity(found.len());
            let mut first_refused = None;
            for a in found {
                match allow.check(a.ip(), port, host_allowed) {
                    Ok(()) => kept.push(a),
                    Err(range) => {
                        first_refused.get_or_insert((a.ip(), range));
                    }
                }
            }
            if kept.is_empty() {
                if let Some((ip, range)) = first_refused {
                    let why = format!("{host} resolves to {ip}, a {range} address: {WHAT_TO_DO}");
                    *refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
                    return Err(why.into());
                }
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// The innermost cause of a client error, without the URL reqwest would print.
fn cause(e: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(next) = last.source() {
        last = next;
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the response broke off"
    } else {
        "the request failed"
    };
    if std::ptr::addr_eq(last, e as &dyn std::error::Error) { what.to_owned() } else { format!("{what} ({last})") }
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
        let (port, host_allowed) = check_target(&url, &policy.allow, &at)?;
        let refused = Arc::new(Mutex::new(None));
        let resolver = GuardedResolver { allow: policy.allow.clone(), port, host_allowed, refused: refused.clone() };
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .connect_timeout(policy.timeout)
            .dns_resolver(Arc::new(resolver))
            .build()
            .map_err(|e| retryable(&at, format!("the HTTP client could not start: {}", cause(&e))))?;
        let response = match client.get(url.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                if let Some(why) = refused.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    return Err(permanent(&at, why));
                }
                return Err(retryable(&at, cause(&e)));
            }
        };
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
    while let Some(chunk) = response.chunk().await.map_err(|e| retryable(at, cause(&e)))? {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
