//! The HTTP client for whatsapp-rust clients of this server (pgwa's `loopback` builds,
//! the test client). whatsapp-rust always reaches media hosts over https, but this
//! server serves its media CDN on its own 127.0.0.1 port with no TLS: requests to a
//! loopback host go over plain http, everything else is left to ureq unchanged.

use whatsapp_rust::anyhow::Result;
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse, UreqHttpClient};
use whatsapp_rust::wacore::net::{StreamingHttpResponse, UploadBody};
use whatsapp_rust::wacore::stats::HttpResourceReport;

#[derive(Debug, Clone, Default)]
pub struct LoopbackHttpClient {
    inner: UreqHttpClient,
}

impl LoopbackHttpClient {
    pub fn new() -> Self {
        Self::default()
    }
}

/// `https://` on a loopback host becomes `http://`; any other URL is returned as is.
pub fn plain_for_loopback(mut request: HttpRequest) -> HttpRequest {
    if let Ok(url) = url::Url::parse(&request.url)
        && url.scheme() == "https"
        && is_loopback_host(&url)
    {
        request.url = format!("http{}", &request.url["https".len()..]);
    }
    request
}

/// Whether `url` names this machine (localhost, 127.0.0.0/8, ::1).
pub fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[whatsapp_rust::async_trait]
impl HttpClient for LoopbackHttpClient {
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse> {
        self.inner.execute(plain_for_loopback(request)).await
    }

    fn supports_streaming(&self) -> bool {
        self.inner.supports_streaming()
    }

    fn execute_streaming(&self, request: HttpRequest) -> Result<StreamingHttpResponse> {
        self.inner.execute_streaming(plain_for_loopback(request))
    }

    fn supports_upload_streaming(&self) -> bool {
        self.inner.supports_upload_streaming()
    }

    fn execute_upload(&self, request: HttpRequest, body: UploadBody, content_length: u64) -> Result<HttpResponse> {
        self.inner.execute_upload(plain_for_loopback(request), body, content_length)
    }

    fn resource_report(&self) -> Option<HttpResourceReport> {
        self.inner.resource_report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(url: &str) -> String {
        plain_for_loopback(HttpRequest::get(url)).url
    }

    #[test]
    fn only_loopback_hosts_lose_tls() {
        assert_eq!(rewritten("https://127.0.0.1:5222/mms/image/t?auth=a"), "http://127.0.0.1:5222/mms/image/t?auth=a");
        assert_eq!(rewritten("https://localhost:80/v/x.enc"), "http://localhost:80/v/x.enc");
        assert_eq!(rewritten("https://[::1]:9/v/x.enc"), "http://[::1]:9/v/x.enc");
        assert_eq!(rewritten("https://mmg.whatsapp.net/v/x.enc"), "https://mmg.whatsapp.net/v/x.enc");
        assert_eq!(rewritten("https://127.0.0.1.evil.example/v"), "https://127.0.0.1.evil.example/v");
        assert_eq!(rewritten("http://127.0.0.1:1/v"), "http://127.0.0.1:1/v");
    }
}
