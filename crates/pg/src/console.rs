//! What the operator console shows, read in one statement as JSON for the page: the
//! sessions (status, health, error counters beside their limits, owner worker and
//! lease), sessions counted by status, the queue by session and kind, and the workers
//! with their heartbeats. The console sits behind the admin token and reads as the
//! owner; its actions go through the SQL API like every other caller's. Never the QR
//! code's text nor any key: the page asks the QR endpoint for the image.

use sqlx::PgPool;

/// The console's picture of the system: at most `limit` sessions, those whose id,
/// phone number or tenant contains `search` when given.
pub async fn overview(pool: &PgPool, search: Option<&str>, limit: i64) -> sqlx::Result<serde_json::Value> {
    sqlx::query_scalar!(
        r#"WITH picked AS (
               SELECT h.session, s.tenant, h.desired, h.status, h.status_reason, h.status_changed_at, h.status_until,
                      s.phone, s.push_name, h.healthy, h.held, h.worker_id, w.host AS worker_host, h.backend,
                      CASE WHEN h.held THEN s.lease_expires_at END AS lease_expires_at,
                      h.bad_mac_count, h.bad_mac_limit, h.bad_decrypt_count, h.bad_decrypt_limit,
                      h.failed_connect_count, h.connect_failure_limit, h.last_error, h.last_error_at, h.connected_at,
                      (s.qr_code IS NOT NULL AND s.qr_expires_at > now()) AS has_qr
                 FROM wa.session_health h
                 JOIN wa.sessions s ON s.id = h.session
                 LEFT JOIN wa.workers w ON w.id = h.worker_id
                WHERE $1::text IS NULL
                   OR strpos(lower(s.id), lower($1)) > 0 OR strpos(s.phone, $1) > 0 OR strpos(lower(s.tenant), lower($1)) > 0
                ORDER BY h.session
                LIMIT $2)
           SELECT jsonb_build_object(
               'now', now(),
               'sessions', (SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.session), '[]') FROM picked p),
               'by_status', (SELECT coalesce(jsonb_object_agg(c.status, c.n), '{}')
                               FROM (SELECT status, count(*) AS n FROM wa.sessions GROUP BY status) c),
               'queue', (SELECT coalesce(jsonb_agg(to_jsonb(q) ORDER BY q.session NULLS FIRST, q.kind), '[]')
                           FROM (SELECT session, kind, available, scheduled, running, retryable, dead,
                                        extract(epoch FROM oldest_available_age)::float8 AS oldest_available_secs
                                   FROM wa.queue_stats) q),
               'workers', (SELECT coalesce(jsonb_agg(to_jsonb(k) ORDER BY k.started_at), '[]')
                             FROM (SELECT w.id, w.host, w.pid, w.version, w.backend, w.max_sessions, w.started_at,
                                          w.heartbeat_at, w.stopping_at,
                                          extract(epoch FROM now() - w.heartbeat_at)::float8 AS heartbeat_age_secs,
                                          (SELECT count(*) FROM wa.sessions s
                                            WHERE s.owner_id = w.id AND s.lease_expires_at > now()) AS sessions
                                     FROM wa.workers w) k)
           ) AS "overview!""#,
        search,
        limit,
    )
    .fetch_one(pool)
    .await
}
