//! The connect page: what an end customer opens from a link made by `wa.connect_link`
//! to link their WhatsApp number. It shows the session's QR code and replaces it as it
//! refreshes (Server-Sent Events), offers a pairing code for a typed number, and says
//! "connected" with the number, or what went wrong. Any worker serves it: the state is
//! the session's row, and changes arrive through the worker's LISTEN.
//!
//! Routes: `GET /connect/{token}` (the page, with its first state and that state's HTTP
//! status), `GET .../state` (JSON), `GET .../events` (SSE), `POST .../pair` (`{"phone"}`),
//! `POST .../restart` (a new round of QR codes, or a retry), `GET /assets/connect.{js,css}`.

mod assets;
mod limits;
pub mod token;
mod view;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use crate::Shared;
use limits::Limits;
use token::Grant;
pub use view::{PageError, PageState};

/// How often a watching page re-reads the row without a notification: the fallback in
/// poll-only mode and after a missed NOTIFY.
const POLL: Duration = Duration::from_secs(2);

pub struct Connect {
    shared: Arc<Shared>,
    limits: Limits,
}

pub fn routes(shared: Arc<Shared>) -> Router {
    let http = &shared.cfg.http;
    let limits = Limits::new(http.connect_requests_per_minute, http.connect_actions_per_hour);
    let state = Arc::new(Connect { shared, limits });
    Router::new()
        .route("/connect/{token}", get(page))
        .route("/connect/{token}/state", get(state_json))
        .route("/connect/{token}/events", get(events))
        .route("/connect/{token}/pair", post(pair))
        .route("/connect/{token}/restart", post(restart))
        .route("/assets/{file}", get(assets::asset))
        .with_state(state)
}

impl Connect {
    /// The token's grant, checked against the key as it is now: read on every request
    /// (one primary-key read; the rate limits bound them), so a rotation voids links at
    /// once on every worker.
    async fn grant(&self, token: &str) -> Result<Grant, PageError> {
        let key = pgwa_pg::connect_page::key(&self.shared.pool).await.map_err(db_error)?;
        token::verify(&key, token, Utc::now().timestamp()).ok_or(PageError::InvalidToken)
    }

    /// The client's address: the socket's, or the last hop of `http.client_ip_header`
    /// when a proxy in front sets it.
    fn client(&self, headers: &HeaderMap, addr: Option<SocketAddr>) -> IpAddr {
        let from_header = self.shared.cfg.http.client_ip_header.as_deref().and_then(|h| {
            let v = headers.get(h)?.to_str().ok()?;
            v.rsplit(',').next()?.trim().parse().ok()
        });
        from_header.or(addr.map(|a| a.ip())).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    fn limit_client(&self, headers: &HeaderMap, addr: Option<SocketAddr>) -> Result<(), PageState> {
        self.limits
            .client(self.client(headers, addr))
            .map_err(|wait| PageState::Error { error: PageError::RateLimit, retry_after: Some(wait) })
    }

    /// The state to show for `token` now (errors included).
    async fn current(&self, token: &str) -> (Option<Grant>, PageState) {
        let grant = match self.grant(token).await {
            Ok(g) => g,
            Err(e) => return (None, PageState::error(e)),
        };
        let state = match pgwa_pg::connect_page::view(&self.shared.pool, &grant.session).await {
            Ok(Some(v)) => PageState::of(&v),
            Ok(None) => PageState::error(PageError::SessionNotFound),
            Err(e) => PageState::error(db_error(e)),
        };
        (Some(grant), state)
    }
}

fn db_error(e: pgwa_pg::Error) -> PageError {
    tracing::warn!(error = %e, "connect page: reading the database failed");
    PageError::DbError
}

/// The peer's address (the server runs with connect info: http::serve).
type Client = ConnectInfo<SocketAddr>;

/// A JSON answer with the state's HTTP status (and Retry-After when rate limited).
fn answer(state: &PageState) -> Response {
    let mut r = (state.status(), Json(state.json(Utc::now()))).into_response();
    no_store(r.headers_mut());
    if let PageState::Error { retry_after: Some(s), .. } = state {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*s));
    }
    r
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The token is in the URL: it must not travel on as a Referer.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

#[derive(Deserialize)]
struct PageQuery {
    lang: Option<String>,
}

async fn page(
    State(c): State<Arc<Connect>>,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    addr: Client,
) -> Response {
    let state = match c.limit_client(&headers, Some(addr.0)) {
        Ok(()) => c.current(&token).await.1,
        Err(limited) => limited,
    };
    let lang = assets::language(q.lang.as_deref(), headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    let mut r = (state.status(), assets::page(lang, &state.json(Utc::now()))).into_response();
    let h = r.headers_mut();
    no_store(h);
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(assets::CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

async fn state_json(State(c): State<Arc<Connect>>, Path(token): Path<String>, headers: HeaderMap, addr: Client) -> Response {
    if let Err(limited) = c.limit_client(&headers, Some(addr.0)) {
        return answer(&limited);
    }
    answer(&c.current(&token).await.1)
}

async fn events(State(c): State<Arc<Connect>>, Path(token): Path<String>, headers: HeaderMap, addr: Client) -> Response {
    if let Err(limited) = c.limit_client(&headers, Some(addr.0)) {
        return answer(&limited);
    }
    let grant = match c.grant(&token).await {
        Ok(g) => g,
        Err(e) => return answer(&PageState::error(e)),
    };
    let (tx, rx) = mpsc::channel::<Event>(4);
    let changes = c.shared.link_changes.subscribe();
    tokio::spawn(watch(c.clone(), grant, changes, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx)) });
    let mut r = Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
    no_store(r.headers_mut());
    // nginx buffers responses by default, which would hold the events back.
    r.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// Sends the page each new state of its session until the page goes away or the token
/// expires: on each notification about the session, and every POLL without one.
async fn watch(c: Arc<Connect>, grant: Grant, mut changes: broadcast::Receiver<String>, tx: mpsc::Sender<Event>) {
    let mut last: Option<PageState> = None;
    loop {
        let state = if Utc::now().timestamp() >= grant.expires {
            PageState::error(PageError::InvalidToken)
        } else {
            match pgwa_pg::connect_page::view(&c.shared.pool, &grant.session).await {
                Ok(Some(v)) => PageState::of(&v),
                Ok(None) => PageState::error(PageError::SessionNotFound),
                Err(e) => PageState::error(db_error(e)),
            }
        };
        if last.as_ref() != Some(&state) {
            let Ok(event) = Event::default().json_data(state.json(Utc::now())) else { return };
            if tx.send(event).await.is_err() {
                return;
            }
            if state == PageState::error(PageError::InvalidToken) {
                return;
            }
            last = Some(state);
        }
        let poll = tokio::time::sleep(POLL);
        tokio::pin!(poll);
        loop {
            tokio::select! {
                n = changes.recv() => match n {
                    Ok(s) if s != grant.session => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                    _ => break, // ours, or lagged behind (look anyway)
                },
                _ = &mut poll => break,
                _ = tx.closed() => return,
                // Ends the stream, so the server's graceful shutdown does not wait on it.
                _ = c.shared.stopping.cancelled() => return,
            }
        }
    }
}

#[derive(Deserialize)]
struct PairBody {
    phone: String,
}

async fn pair(
    State(c): State<Arc<Connect>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    addr: Client,
    body: axum::body::Bytes,
) -> Response {
    // Parsed here, so a malformed body gets the page's own JSON answer.
    let phone = serde_json::from_slice::<PairBody>(&body).ok().map(|b| b.phone);
    act(&c, &token, &headers, addr, |pool, session| async move {
        let Some(phone) = phone else { return Err(PageError::InvalidPhone) };
        pgwa_pg::connect_page::pair_by_phone(&pool, &session, &phone).await.map_err(|e| match sqlstate(&e).as_deref() {
            Some("WA009") => PageError::InvalidPhone,
            _ => db_error(e),
        })
    })
    .await
}

async fn restart(State(c): State<Arc<Connect>>, Path(token): Path<String>, headers: HeaderMap, addr: Client) -> Response {
    act(&c, &token, &headers, addr, |pool, session| async move {
        pgwa_pg::connect_page::restart(&pool, &session).await.map_err(db_error)
    })
    .await
}

/// The checks every action goes through (client rate, token, the session's action
/// rate), then `f`; answers with the state the page shows next.
async fn act<F, Fut>(c: &Arc<Connect>, token: &str, headers: &HeaderMap, addr: Client, f: F) -> Response
where
    F: FnOnce(pgwa_pg::PgPool, String) -> Fut,
    Fut: std::future::Future<Output = Result<bool, PageError>>,
{
    if let Err(limited) = c.limit_client(headers, Some(addr.0)) {
        return answer(&limited);
    }
    let grant = match c.grant(token).await {
        Ok(g) => g,
        Err(e) => return answer(&PageState::error(e)),
    };
    if let Err(wait) = c.limits.action(&grant.session) {
        return answer(&PageState::Error { error: PageError::RateLimit, retry_after: Some(wait) });
    }
    match f(c.shared.pool.clone(), grant.session).await {
        Ok(true) => answer(&PageState::Waiting),
        // Connected already (or removed): the page shows that instead.
        Ok(false) => answer(&c.current(token).await.1),
        Err(e) => answer(&PageState::error(e)),
    }
}

fn sqlstate(e: &pgwa_pg::Error) -> Option<String> {
    match e {
        pgwa_pg::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}
