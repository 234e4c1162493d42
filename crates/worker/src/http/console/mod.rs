//! The operator console: `GET /console` is the page (a shell holding no data; its
//! script and style are compiled in), and every call it makes goes to the JSON API
//! under `/console/api/`, behind `Authorization: Bearer <http.admin_token>`. A header,
//! not a cookie: no other site can make a browser call it (no CSRF), and the token
//! never sits in a URL. Tenant tokens do not open it (403): its reads and actions span
//! every tenant.
//!
//! Reads: `GET api/overview` (sessions, counts, queue, workers), `GET api/jobs`
//! (filter: state, session, kind, error). Actions, through the SQL API so the rules
//! and errors are the same as from SQL: `POST api/sessions/{id}/{start|stop|reconnect|close}`,
//! `POST api/jobs/{id}/{retry|cancel}`, `POST api/jobs/{retry|cancel}` with a filter
//! (wa.retry_jobs / wa.cancel_jobs). Live: `GET api/events` (Server-Sent Events naming
//! each session whose state changed); the page also polls.

mod api_error;
mod assets;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::auth;
use crate::Shared;
use api_error::ApiError;
use pgwa_core::job::{JobKind, JobState};

pub fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/console", get(assets::page))
        .route("/console/{file}", get(assets::asset))
        .route("/console/api/overview", get(overview))
        .route("/console/api/jobs", get(jobs))
        .route("/console/api/jobs/{action}", post(jobs_by_filter))
        .route("/console/api/jobs/{id}/{action}", post(job_action))
        .route("/console/api/sessions/{id}/{action}", post(session_action))
        .route("/console/api/events", get(events))
        .with_state(shared)
}

/// A request that carried the admin token.
struct Admin;

impl FromRequestParts<Arc<Shared>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        let query = Query::<HashMap<String, String>>::try_from_uri(&parts.uri).map(|q| q.0).unwrap_or_default();
        auth::admin(shared, &parts.headers, &query).map(|()| Admin).map_err(|r| ApiError::new(r.status, r.message))
    }
}

/// An empty form field means "any".
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn parse<T: std::str::FromStr<Err = String>>(field: &str, v: &Option<String>) -> Result<Option<T>, ApiError> {
    given(v).map(|s| s.parse::<T>().map_err(|e| ApiError::bad_request(format!("{field}: {e}")))).transpose()
}

#[derive(Deserialize)]
struct OverviewQuery {
    q: Option<String>,
    limit: Option<i64>,
}

async fn overview(_: Admin, State(shared): State<Arc<Shared>>, Query(q): Query<OverviewQuery>) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let mut v = pgwa_pg::console::overview(&shared.pool, given(&q.q), limit).await?;
    v["served_by"] = json!({ "worker": shared.id, "version": env!("CARGO_PKG_VERSION") });
    v["limit"] = json!(limit);
    v["kinds"] = json!(JobKind::ALL);
    Ok(api_error::ok(v))
}

#[derive(Deserialize)]
struct JobsQuery {
    state: Option<String>,
    session: Option<String>,
    kind: Option<String>,
    error: Option<String>,
    limit: Option<i64>,
}

async fn jobs(_: Admin, State(shared): State<Arc<Shared>>, Query(q): Query<JobsQuery>) -> Result<Response, ApiError> {
    let filter = pgwa_pg::admin::JobFilter {
        session: given(&q.session),
        state: parse::<JobState>("state", &q.state)?,
        kind: parse::<JobKind>("kind", &q.kind)?,
        error_contains: given(&q.error),
        limit: q.limit.unwrap_or(100).clamp(1, 500),
    };
    let rows = pgwa_pg::admin::jobs(&shared.pool, &filter).await?;
    Ok(api_error::ok(json!({ "jobs": rows })))
}

/// The filter of a bulk retry or cancel. Unknown fields are refused: a misspelt
/// `sesion` must not widen a retry to every session's dead jobs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pick {
    session: Option<String>,
    kind: Option<String>,
    state: Option<String>,
    error_contains: Option<String>,
    max_jobs: Option<i32>,
}

async fn jobs_by_filter(
    _: Admin,
    State(shared): State<Arc<Shared>>,
    Path(action): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let p: Pick = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let pick = pgwa_pg::api::JobPick {
        session: given(&p.session),
        kind: parse::<JobKind>("kind", &p.kind)?.map(|k| k.as_str().to_owned()),
        state: parse::<JobState>("state", &p.state)?.map(|s| s.as_str().to_owned()),
        error_contains: given(&p.error_contains),
        max_jobs: p.max_jobs.unwrap_or(1000),
    };
    let n = match action.as_str() {
        "retry" => pgwa_pg::api::retry_jobs(&shared.pool, &pick).await?,
        "cancel" => pgwa_pg::api::cancel_jobs(&shared.pool, &pick).await?,
        _ => return Err(ApiError::not_found("action: use retry or cancel")),
    };
    tracing::info!(action, jobs = n, "console: jobs moved by filter");
    Ok(api_error::ok(json!({ "action": action, "jobs": n })))
}

async fn job_action(
    _: Admin,
    State(shared): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::bad_request(format!("job: {id:?} is not a job id")))?;
    let state = match action.as_str() {
        "retry" => pgwa_pg::api::retry_job(&shared.pool, id).await?,
        "cancel" => pgwa_pg::api::cancel_job(&shared.pool, id).await?,
        _ => return Err(ApiError::not_found("action: use retry or cancel")),
    };
    tracing::info!(job = id, action, "console: job action");
    Ok(api_error::ok(json!({ "job": id, "action": action, "state": state })))
}

async fn session_action(
    _: Admin,
    State(shared): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let pool = &shared.pool;
    let job = match action.as_str() {
        "start" => pgwa_pg::api::start_session(pool, &id).await.map(|()| None)?,
        "stop" => pgwa_pg::api::stop_session(pool, &id).await.map(|()| None)?,
        "reconnect" => Some(pgwa_pg::api::reconnect(pool, &id).await?),
        "close" => Some(pgwa_pg::api::close_session(pool, &id, "closed from the console").await?),
        _ => return Err(ApiError::not_found("action: use start, stop, reconnect or close")),
    };
    tracing::info!(session = %id, action, "console: session action");
    Ok(api_error::ok(json!({ "session": id, "action": action, "job": job })))
}

/// How often the stream says it is alive, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One `session` event (data: the id) each time a session's state changes, from this
/// worker's LISTEN; the page re-reads the overview then.
async fn events(_: Admin, State(shared): State<Arc<Shared>>) -> Response {
    let changes = shared.link_changes.subscribe();
    let stopping = shared.stopping.clone();
    let stream = futures::stream::unfold((changes, stopping), |(mut changes, stopping)| async move {
        let next = tokio::select! {
            n = changes.recv() => n,
            // Ends the stream, so the server's graceful shutdown does not wait on it.
            _ = stopping.cancelled() => return None,
        };
        let session = match next {
            Ok(session) => session,
            // Fell behind: an empty id tells the page to re-read everything.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => String::new(),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, Infallible>(Event::default().event("session").data(session)), (changes, stopping)))
    });
    let mut r = Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response();
    r.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    api_error::no_store(r.headers_mut());
    r
}
