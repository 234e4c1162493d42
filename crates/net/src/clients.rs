//! Guarded clients kept per target, so repeated requests to one receiver (a webhook's
//! deliveries) reuse its client: its TLS set-up and its pooled keep-alive connections,
//! instead of a handshake per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgwa_core::fetch_policy::FetchAllow;
use url::Url;

use crate::{Failure, Guarded, check_target};

/// How many targets keep a client; past that the map starts over (a worker talking to
/// more receivers than this pays a handshake now and then, nothing else).
const MAX_TARGETS: usize = 256;

/// Guarded clients by (host, port), all under one policy.
pub struct Clients {
    allow: FetchAllow,
    timeout: Duration,
    what_to_do: &'static str,
    by_target: Mutex<HashMap<(String, u16), Arc<Guarded>>>,
}

impl Clients {
    pub fn new(allow: FetchAllow, timeout: Duration, what_to_do: &'static str) -> Self {
        Self { allow, timeout, what_to_do, by_target: Mutex::new(HashMap::new()) }
    }

    /// The client for `url`'s host and port. The URL itself is checked on every call
    /// (scheme, credentials, an IP literal's range): only the client is shared, and its
    /// resolver checks each address it connects to, as a fresh one would.
    pub fn for_url(&self, url: &Url) -> Result<Arc<Guarded>, Failure> {
        let (port, host_allowed) = check_target(url, &self.allow, self.what_to_do)?;
        let target = (url.host_str().unwrap_or_default().to_ascii_lowercase(), port);
        let mut map = self.by_target.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = map.get(&target) {
            return Ok(g.clone());
        }
        let g = Arc::new(Guarded::for_checked(&self.allow, port, host_allowed, self.timeout, self.what_to_do)?);
        if map.len() >= MAX_TARGETS {
            map.clear();
        }
        map.insert(target, g.clone());
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Clients {
        fn len(&self) -> usize {
            self.by_target.lock().unwrap().len()
        }
    }

    #[test]
    fn one_client_per_host_and_port_and_every_url_still_checked() {
        let clients = Clients::new(FetchAllow::default(), Duration::from_secs(1), "ask the operator");
        let a = clients.for_url(&Url::parse("https://hooks.example.com/a").unwrap()).unwrap();
        let b = clients.for_url(&Url::parse("https://HOOKS.example.com/b?x=1").unwrap()).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same host and port share a client");
        let c = clients.for_url(&Url::parse("https://hooks.example.com:8443/a").unwrap()).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "another port gets its own client");
        assert_eq!(clients.len(), 2);
        assert!(matches!(clients.for_url(&Url::parse("http://u:p@hooks.example.com/").unwrap()), Err(Failure::Refused(_))));
        assert!(matches!(clients.for_url(&Url::parse("http://127.0.0.1/").unwrap()), Err(Failure::Refused(_))));
        assert_eq!(clients.len(), 2, "refused URLs leave no client behind");
    }
}
