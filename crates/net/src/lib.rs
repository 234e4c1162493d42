//! HTTP requests to a URL an app chose (a send's `payload.url`, a webhook's `url`),
//! guarded against server-side request forgery. The worker runs next to things an app
//! must not reach (the cloud metadata service, Postgres, internal admin pages), so it
//! connects only to public addresses unless the operator allows more
//! (`pgwa_core::fetch_policy`).
//!
//! The address checked is the address connected to. Host names are resolved by our own
//! resolver inside the HTTP client, which hands the connector only the permitted
//! addresses, so a DNS answer that changes between a check and the connect (rebinding)
//! has nothing to slip through. The client skips resolvers for IP literals, so those are
//! checked before the request. It follows no redirect (a caller that follows them makes
//! one guarded request per hop) and ignores environment proxies: through a proxy the
//! proxy would resolve and connect, unchecked.
//!
//! Errors never quote a whole URL: signed URLs and webhook endpoints carry secrets in
//! their query or path ([`shown`]).

mod clients;

pub use clients::Clients;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgwa_core::fetch_policy::FetchAllow;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

/// Why a guarded request was not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The URL or the address it leads to is refused: asking again changes nothing.
    Refused(String),
    /// The request failed on the way (DNS, connect, timeout, a broken response).
    Failed(String),
}

/// A client for requests to one URL's host, connecting only where `allow` permits.
///
/// Shared clients ([`Clients`]) can see two requests refused at once; each then reads
/// the refusal its resolver left, or a plain failure that is retried and refused next time.
pub struct Guarded {
    client: reqwest::Client,
    refused: Arc<Mutex<Option<String>>>,
}

impl Guarded {
    /// Checks `url` (scheme, credentials, an IP literal's range) and builds a client whose
    /// resolver keeps only permitted addresses. `what_to_do` ends every refusal: it says
    /// how the operator allows more.
    pub fn for_url(url: &Url, allow: &FetchAllow, timeout: Duration, what_to_do: &'static str) -> Result<Self, Failure> {
        let (port, host_allowed) = check_target(url, allow, what_to_do)?;
        Self::for_checked(allow, port, host_allowed, timeout, what_to_do)
    }

    /// The client for a target [`check_target`] has passed (`port`, `host_allowed` are
    /// what it returned), so a caller that checks every URL itself does not check twice.
    fn for_checked(
        allow: &FetchAllow,
        port: u16,
        host_allowed: bool,
        timeout: Duration,
        what_to_do: &'static str,
    ) -> Result<Self, Failure> {
        let refused = Arc::new(Mutex::new(None));
        let resolver = GuardedResolver { allow: allow.clone(), port, host_allowed, what_to_do, refused: refused.clone() };
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .connect_timeout(timeout)
            .dns_resolver(Arc::new(resolver))
            .build()
            .map_err(|e| Failure::Failed(format!("the HTTP client could not start: {}", cause(&e))))?;
        Ok(Self { client, refused })
    }

    /// The client, to build a request with; send it through [`Guarded::send`].
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request`: the response, whatever its status, or why there is none.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
        match request.send().await {
            Ok(r) => Ok(r),
            Err(e) => match self.refused.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some(why) => Err(Failure::Refused(why)),
                None => Err(Failure::Failed(cause(&e))),
            },
        }
    }
}

/// Refuses what no request should be made for: other schemes, credentials in the URL,
/// an IP literal in a refused range. Returns the port and whether the host is allowed.
fn check_target(url: &Url, allow: &FetchAllow, what_to_do: &str) -> Result<(u16, bool), Failure> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Failure::Refused(format!("scheme {:?} is not http or https", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Failure::Refused("credentials in the URL (user:password@) are refused; the worker sends none".into()));
    }
    let port = url.port_or_known_default().unwrap_or(0);
    let literal = |ip: IpAddr| match allow.check(ip, port, false) {
        Ok(()) => Ok((port, false)),
        Err(range) => Err(Failure::Refused(format!("{ip} is a {range} address: {what_to_do}"))),
    };
    match url.host() {
        None => Err(Failure::Refused("the URL has no host".into())),
        Some(url::Host::Domain(d)) => Ok((port, allow.allows_host(d, port))),
        Some(url::Host::Ipv4(ip)) => literal(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => literal(IpAddr::V6(ip)),
    }
}

/// Resolves host names and keeps only the addresses the policy permits; the client
/// connects to nothing else. A refusal is also left in `refused`, so the caller can tell
/// it from a DNS failure (which is worth retrying).
struct GuardedResolver {
    allow: FetchAllow,
    port: u16,
    host_allowed: bool,
    what_to_do: &'static str,
    refused: Arc<Mutex<Option<String>>>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let (allow, port, host_allowed, what_to_do, refused) =
            (self.allow.clone(), self.port, self.host_allowed, self.what_to_do, self.refused.clone());
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
            if kept.is_empty()
                && let Some((ip, range)) = first_refused
            {
                let why = format!("{host} resolves to {ip}, a {range} address: {what_to_do}");
                *refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
                return Err(why.into());
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// The innermost cause of a client error, without the URL reqwest would print.
pub fn cause(e: &reqwest::Error) -> String {
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

/// The URL as errors may quote it: scheme, host, port and the start of the path; no
/// credentials, query or fragment.
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

/// The start of a string that is not a URL, as errors may quote it.
pub fn shown_raw(s: &str) -> String {
    let head: String = s.chars().take(16).collect();
    if head.len() < s.len() { format!("{head}…") } else { head }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_keep_no_secret() {
        let u = Url::parse("https://user:pw@hooks.example.com:8443/a/very/long/path/with/a/token?sig=abc").unwrap();
        assert_eq!(shown(&u), "https://hooks.example.com:8443/a/very/long/pat…?…");
        assert_eq!(shown_raw("not a url but a long secret"), "not a url but a …");
    }

    #[test]
    fn targets_outside_the_policy_are_refused_before_any_request() {
        let allow = FetchAllow::default();
        let refused = |u: &str| match check_target(&Url::parse(u).unwrap(), &allow, "ask the operator") {
            Err(Failure::Refused(why)) => why,
            other => panic!("{u}: {other:?}"),
        };
        assert!(refused("ftp://example.com/x").contains("scheme"));
        assert!(refused("http://a:b@example.com/").contains("credentials"));
        assert!(refused("http://127.0.0.1:5432/").ends_with("ask the operator"));
        assert!(refused("http://[::1]/").contains("loopback"));
        assert!(refused("http://169.254.169.254/latest/meta-data").contains("link-local"));
        assert_eq!(check_target(&Url::parse("https://example.com/").unwrap(), &allow, "").unwrap(), (443, false));
    }
}
