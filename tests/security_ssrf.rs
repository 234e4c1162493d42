//! Server-side request forgery through a send's `payload.url`: the worker fetches only
//! public addresses unless the operator allows more (`whatsapp.rust.media_fetch_allow`),
//! re-checks every redirect, ignores proxy settings, bounds size and time, and quotes
//! the URL only in part.
//!
//! Only loopback addresses are ever connected to here. The other ranges are checked on
//! the address policy itself; the fetch tests point at loopback servers that would
//! answer 200, so a guard that let a request through fails the test, and each server
//! counts its connections to show that refused requests never reached it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pgwa_core::fetch_policy::FetchAllow;
use pgwa_core::fetch_policy::non_public;
use pgwa_core::wa::SendError;
use pgwa_wa::rust::fetch::{FetchPolicy, fetch_url};
use pgwa_wa::rust::send;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];

/// A loopback HTTP server: one canned response per request path, counting connections.
struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Server {
    async fn start(ip: &str, respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let (counter, respond) = (hits.clone(), Arc::new(respond));
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                let respond = respond.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_owned();
                    let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
                    let _ = sock.write_all(&respond(&path)).await;
                });
            }
        });
        Self { addr, hits }
    }

    /// Answers 200 with a PNG to every request.
    async fn png(ip: &str) -> Self {
        Self::start(ip, |_| ok(PNG)).await
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

fn redirect(location: &str) -> Vec<u8> {
    format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").into_bytes()
}

fn allow(entries: &[&str]) -> FetchAllow {
    FetchAllow::try_from(entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn policy(entries: &[&str]) -> FetchPolicy {
    FetchPolicy { allow: allow(entries), ..FetchPolicy::public_only(1024, Duration::from_secs(5)) }
}

#[track_caller]
fn permanent(got: Result<Vec<u8>, SendError>, needle: &str) -> String {
    match got {
        Err(SendError::Permanent(m)) if m.contains(needle) && m.starts_with("payload.url: ") => m,
        other => panic!("expected a permanent failure naming payload.url and {needle:?}, got {other:?}"),
    }
}

#[test]
fn every_non_public_range_is_refused_and_public_addresses_pass() {
    let refused = [
        ("0.0.0.0", "this network"),
        ("0.1.2.3", "this network"),
        ("10.0.0.1", "private (10.0.0.0/8)"),
        ("10.255.255.255", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.255", "carrier-grade NAT"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("169.254.169.254", "link-local"),
        ("172.16.0.1", "private (172.16.0.0/12)"),
        ("172.31.255.255", "private"),
        ("192.0.0.8", "IETF"),
        ("192.0.2.1", "documentation"),
        ("192.88.99.1", "6to4"),
        ("192.168.1.1", "private (192.168.0.0/16)"),
        ("198.18.0.1", "benchmarking"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("::", "unspecified"),
        ("::1", "loopback (::1)"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("100::1", "discard-only"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("2001::1", "IETF"),
        ("2001:db8::1", "documentation"),
        ("2002:7f00:1::1", "6to4"),
        ("3fff::1", "documentation"),
        ("4000::1", "outside global unicast"),
        // IPv4-mapped and NAT64 forms reach the IPv4 address inside them.
        ("::ffff:127.0.0.1", "loopback (127.0.0.0/8)"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:192.168.0.1", "private"),
        ("::ffff:0.0.0.0", "this network"),
        ("64:ff9b::7f00:1", "loopback (127.0.0.0/8)"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
    ];
    for (ip, range) in refused {
        let got = non_public(ip.parse().unwrap());
        assert!(got.is_some_and(|r| r.contains(range)), "{ip}: expected {range:?}, got {got:?}");
    }
    let public = [
        "8.8.8.8",
        "1.1.1.1",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "2606:4700::1111",
        "2a00:1450:4001::1",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ];
    for ip in public {
        assert_eq!(non_public(ip.parse().unwrap()), None, "{ip} is public");
    }
}

/// The URL parser turns numeric IPv4 forms into addresses, so they meet the same check
/// as the dotted form; names go through the resolver's check.
#[tokio::test]
async fn loopback_in_every_spelling_is_refused_before_any_connection() {
    let server = Server::png("127.0.0.1").await;
    let p = server.port();
    let policy = FetchPolicy::public_only(1024, Duration::from_secs(5));
    let spellings = [
        (format!("http://127.0.0.1:{p}/a.png"), "loopback"),
        (format!("http://2130706433:{p}/a.png"), "loopback"),
        (format!("http://0x7f.1:{p}/a.png"), "loopback"),
        (format!("http://0x7f000001:{p}/a.png"), "loopback"),
        (format!("http://0177.0.0.1:{p}/a.png"), "loopback"),
        (format!("http://127.1:{p}/a.png"), "loopback"),
        (format!("http://127.0.0.1.:{p}/a.png"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{p}/a.png"), "loopback"),
        (format!("http://[::ffff:7f00:1]:{p}/a.png"), "loopback"),
        (format!("http://[::1]:{p}/a.png"), "loopback"),
        (format!("http://0.0.0.0:{p}/a.png"), "this network"),
        (format!("http://0:{p}/a.png"), "this network"),
        (format!("http://localhost:{p}/a.png"), "loopback"),
        (format!("http://LocalHost:{p}/a.png"), "loopback"),
        (format!("https://localhost:{p}/a.png"), "loopback"),
    ];
    for (url, range) in &spellings {
        let m = permanent(fetch_url(url, &policy).await, range);
        assert!(m.contains("media_fetch_allow"), "says how to allow it: {m}");
    }
    assert_eq!(server.hits(), 0, "no refused request reached the server");

    // The same server is reachable once allowed: the refusals above were the policy's.
    assert_eq!(fetch_url(&spellings[1].0, &policy_allowing("127.0.0.1")).await.unwrap(), PNG);
    assert_eq!(server.hits(), 1);
}

fn policy_allowing(entry: &str) -> FetchPolicy {
    policy(&[entry])
}

/// A server the operator allowed (127.0.0.2) redirects to one it did not (127.0.0.1):
/// the redirect target is checked like the first URL, by literal and by name.
#[tokio::test]
async fn a_redirect_from_an_allowed_host_to_a_refused_one_is_refused() {
    let inner = Server::png("127.0.0.1").await;
    let ip_target = format!("http://127.0.0.1:{}/latest/meta-data/?token=s3cr3t", inner.port());
    let name_target = format!("http://localhost:{}/latest/meta-data/", inner.port());
    let (t1, t2) = (ip_target.clone(), name_target.clone());
    let outer = Server::start("127.0.0.2", move |path| match path {
        "/to-ip" => redirect(&t1),
        "/to-name" => redirect(&t2),
        _ => redirect("/to-ip"),
    })
    .await;
    let only_outer = policy(&["127.0.0.2"]);

    let m = permanent(fetch_url(&format!("http://127.0.0.2:{}/to-ip", outer.port()), &only_outer).await, "loopback");
    assert!(m.contains("redirect 1 to http://127.0.0.1:"), "{m}");
    assert!(!m.contains("s3cr3t"), "the query of the redirect target is not quoted: {m}");
    let m = permanent(fetch_url(&format!("http://127.0.0.2:{}/to-name", outer.port()), &only_outer).await, "loopback");
    assert!(m.contains("localhost resolves to"), "{m}");
    // Relative Location, two hops: the check follows the whole chain.
    let m = permanent(fetch_url(&format!("http://127.0.0.2:{}/start", outer.port()), &only_outer).await, "loopback");
    assert!(m.contains("redirect 2"), "{m}");
    assert_eq!(inner.hits(), 0, "the refused redirect target was never connected to");
    assert_eq!(outer.hits(), 4, "the allowed server was asked each time");

    // With the target allowed too, the same chains end at the inner server.
    let both = policy(&["127.0.0.2", &format!("127.0.0.1:{}", inner.port())]);
    for path in ["/to-ip", "/to-name", "/start"] {
        assert_eq!(fetch_url(&format!("http://127.0.0.2:{}{path}", outer.port()), &both).await.unwrap(), PNG, "{path}");
    }
    assert_eq!(inner.hits(), 3);
}

#[tokio::test]
async fn redirects_to_other_schemes_or_with_credentials_and_endless_ones_are_refused() {
    let inner = Server::png("127.0.0.1").await;
    let creds = format!("http://admin:hunter2@127.0.0.1:{}/x", inner.port());
    let outer = Server::start("127.0.0.2", move |path| match path {
        "/file" => redirect("file:///etc/passwd"),
        "/creds" => redirect(&creds),
        _ => redirect("/loop"),
    })
    .await;
    let p = policy(&["127.0.0.2", "127.0.0.1"]);
    let base = format!("http://127.0.0.2:{}", outer.port());
    permanent(fetch_url(&format!("{base}/file"), &p).await, "scheme \"file\" is not http or https");
    let m = permanent(fetch_url(&format!("{base}/creds"), &p).await, "credentials in the URL");
    assert!(!m.contains("hunter2") && !m.contains("admin"), "{m}");
    assert_eq!(inner.hits(), 0);

    let before = outer.hits();
    permanent(fetch_url(&format!("{base}/loop"), &p).await, "more than 5 redirects");
    assert_eq!(outer.hits() - before, 6, "the first request and 5 redirects, then it stops");
}

#[tokio::test]
async fn credentials_and_other_schemes_are_refused_at_once() {
    let server = Server::png("127.0.0.1").await;
    let p = policy_allowing("127.0.0.1");
    let m = permanent(fetch_url(&format!("http://user:pa55@127.0.0.1:{}/a.png", server.port()), &p).await, "credentials");
    assert!(!m.contains("pa55"), "{m}");
    for url in ["file:///etc/passwd", "ftp://127.0.0.1/a", "gopher://127.0.0.1:70/_x", "data:image/png;base64,AAAA"] {
        permanent(fetch_url(url, &p).await, "is not http or https");
    }
    assert_eq!(server.hits(), 0);

    // The payload parser refuses credentials before the job reaches the fetch.
    let e = send::parse(&json!({"type": "image", "url": "https://u:secret@cdn.example/a.png"}), 1024).unwrap_err();
    assert!(
        matches!(&e, SendError::Permanent(m) if m.contains("payload.url") && m.contains("credentials") && !m.contains("secret")),
        "{e:?}"
    );
}

/// Entries name hosts (optionally a port) or address ranges; an allowed name on one
/// port does not open its other ports.
#[tokio::test]
async fn allowed_hosts_open_only_what_they_name() {
    let a = Server::png("127.0.0.1").await;
    let b = Server::png("127.0.0.1").await;
    let p = policy(&[&format!("LOCALHOST:{}", a.port())]);
    assert_eq!(fetch_url(&format!("http://localhost:{}/a.png", a.port()), &p).await.unwrap(), PNG);
    permanent(fetch_url(&format!("http://localhost:{}/a.png", b.port()), &p).await, "loopback");
    permanent(fetch_url(&format!("http://127.0.0.1:{}/a.png", a.port()), &p).await, "loopback");
    assert_eq!((a.hits(), b.hits()), (1, 0));

    let range = allow(&["10.0.0.0/8", "fd00::/8", "files.internal:8443", "192.168.1.5:8080", "[::1]:9000"]);
    assert!(range.allows_addr("10.20.30.40".parse().unwrap(), 1));
    assert!(range.allows_addr("::ffff:10.20.30.40".parse().unwrap(), 1), "the mapped form of an allowed address");
    assert!(!range.allows_addr("11.0.0.1".parse().unwrap(), 1));
    assert!(range.allows_addr("fd00::5".parse().unwrap(), 443));
    assert!(range.allows_addr("192.168.1.5".parse().unwrap(), 8080));
    assert!(!range.allows_addr("192.168.1.5".parse().unwrap(), 8081));
    assert!(range.allows_addr("::1".parse().unwrap(), 9000) && !range.allows_addr("::1".parse().unwrap(), 9001));
    assert!(range.allows_host("files.internal", 8443) && !range.allows_host("files.internal", 443));
    assert!(!range.allows_host("evil.files.internal", 8443), "no subdomains");

    for (bad, why) in [
        ("", "is empty"),
        ("10.0.0.0/33", "not a valid CIDR"),
        ("*.internal", "wildcards"),
        ("files.internal:70000", "port outside"),
        ("files internal", "not a valid host name"),
    ] {
        let e = FetchAllow::try_from(vec![bad.to_owned()]).unwrap_err();
        assert!(e.contains(why) && e.contains("media_fetch_allow"), "{bad:?}: {e}");
    }
}

#[test]
fn the_allow_list_loads_from_the_config_file_and_bad_entries_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgwa.toml");
    // README's example, as written there.
    let example = r#"
[whatsapp.rust]
media_fetch_allow = [
  "10.20.0.0/16",         # any address in this range, any port (IPv6 ranges too: "fd00:1::/64")
  "192.168.1.5:8080",     # this address on this port only ("[fd00::5]:8080" for IPv6)
  "files.internal:8443",  # this host name (exactly, no subdomains) on this port, whatever it resolves to
  "cdn.internal",         # this host name on any port
]
"#;
    std::fs::write(&path, example).unwrap();
    let cfg = pgwa_core::config::Config::load(Some(&path)).unwrap();
    let p = pgwa_wa::rust::fetch::policy_of(&cfg.whatsapp.rust);
    assert!(p.allow.allows_host("files.internal", 8443) && p.allow.allows_addr("10.20.8.7".parse().unwrap(), 80));
    assert!(p.allow.allows_addr("192.168.1.5".parse().unwrap(), 8080) && p.allow.allows_host("cdn.internal", 1234));
    assert!(!p.allow.allows_addr("10.21.0.1".parse().unwrap(), 80));
    assert_eq!((p.max_redirects, p.max_bytes), (5, 16 * 1024 * 1024));
    assert!(pgwa_core::config::RustConfig::default().media_fetch_allow.is_empty(), "public addresses only by default");

    std::fs::write(&path, "[whatsapp.rust]\nmedia_fetch_allow = [\"10.0.0.0/99\"]\n").unwrap();
    let e = pgwa_core::config::Config::load(Some(&path)).unwrap_err().to_string();
    assert!(e.contains("media_fetch_allow") && e.contains("10.0.0.0/99"), "{e}");
}

#[tokio::test]
async fn the_body_is_cut_at_the_size_limit() {
    // No Content-Length: the limit is found while streaming.
    let streamed = Server::start("127.0.0.1", |_| {
        let mut r = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
        r.extend(std::iter::repeat_n(7u8, 1025));
        r
    })
    .await;
    // A Content-Length over the limit is refused before the body is read (none is sent).
    let announced =
        Server::start("127.0.0.1", |_| b"HTTP/1.1 200 OK\r\ncontent-length: 10000000000\r\nconnection: close\r\n\r\n".to_vec())
            .await;
    let exact = Server::start("127.0.0.1", |_| ok(&[7u8; 1024])).await;
    let p = policy_allowing("127.0.0.1");
    permanent(fetch_url(&format!("http://127.0.0.1:{}/", streamed.port()), &p).await, "larger than the 1024-byte limit");
    let started = Instant::now();
    permanent(fetch_url(&format!("http://127.0.0.1:{}/", announced.port()), &p).await, "larger than the 1024-byte limit");
    assert!(started.elapsed() < Duration::from_secs(2), "refused on the header, not after waiting for a body");
    assert_eq!(fetch_url(&format!("http://127.0.0.1:{}/", exact.port()), &p).await.unwrap().len(), 1024);
}

/// The time limit covers the whole fetch: a server that answers nothing, and one that
/// trickles a small body forever, both end as retryable failures on time.
#[tokio::test]
async fn the_whole_fetch_is_bounded_in_time_and_retried() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let trickle = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trickle_port = trickle.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = trickle.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n").await;
                for _ in 0..1000 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if s.write_all(b"x").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let p = FetchPolicy { timeout: Duration::from_millis(600), ..policy_allowing("127.0.0.1") };
    for port in [silent_port, trickle_port] {
        let started = Instant::now();
        let got = fetch_url(&format!("http://127.0.0.1:{port}/slow.png?sig=abcdef"), &p).await;
        let took = started.elapsed();
        assert!(
            matches!(&got, Err(SendError::Retryable(m)) if m.contains("no complete response within 600 ms") && !m.contains("abcdef")),
            "{got:?}"
        );
        assert!(took >= Duration::from_millis(550) && took < Duration::from_secs(3), "took {took:?}");
    }
}

#[tokio::test]
async fn errors_quote_the_url_only_in_part() {
    let server = Server::start("127.0.0.1", |_| b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec()).await;
    let secret_query = "X-Amz-Signature=0123456789abcdef&token=tok-SECRET";
    let long_path = "/tenants/acme/private/invoices/2024/march.pdf";
    let refused = format!("http://localhost:{}{long_path}?{secret_query}", server.port());
    let m = permanent(fetch_url(&refused, &FetchPolicy::public_only(1024, Duration::from_secs(5))).await, "loopback");
    let allowed = format!("http://127.0.0.1:{}{long_path}?{secret_query}#frag", server.port());
    let m404 = permanent(fetch_url(&allowed, &policy_allowing("127.0.0.1")).await, "HTTP 404");
    let bad = format!("http://[::1{long_path}?{secret_query}");
    let mbad = permanent(fetch_url(&bad, &policy_allowing("127.0.0.1")).await, "not a valid URL");
    for m in [&m, &m404, &mbad] {
        for secret in ["tok-SECRET", "X-Amz-Signature", "0123456789abcdef", "march.pdf", "frag", long_path] {
            assert!(!m.contains(secret), "{secret:?} quoted in {m}");
        }
    }
    assert!(m.contains(&format!("http://localhost:{}/tenants/acme/pr…?…", server.port())), "{m}");
    assert!(m404.contains("?…"), "{m404}");
}

/// HTTP_PROXY and friends would hand the request to a proxy, which resolves and connects
/// without our check. A child test process runs the fetch with them set to a "proxy" that
/// would answer 200; the fetch must refuse without ever calling it.
#[tokio::test]
async fn proxy_settings_in_the_environment_are_ignored() {
    if std::env::var_os("PGWA_SSRF_PROXY_CHILD").is_some() {
        let got = fetch_url("http://localhost:9/a.png", &FetchPolicy::public_only(1024, Duration::from_secs(5))).await;
        permanent(got, "loopback");
        return;
    }
    let proxy = Server::png("127.0.0.1").await;
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port());
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap());
    child.args(["--exact", "proxy_settings_in_the_environment_are_ignored", "--test-threads=1"]);
    child.env("PGWA_SSRF_PROXY_CHILD", "1").env_remove("NO_PROXY").env_remove("no_proxy");
    for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
        child.env(var, &proxy_url);
    }
    let out = child.output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("1 passed"), "child: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(proxy.hits(), 0, "the proxy was never asked");
}
