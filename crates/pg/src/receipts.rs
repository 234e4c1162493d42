//! Delivery and read receipts for the messages a session sent: the job's `delivery`
//! only moves forward (sent < delivered < read), each timestamp is set once, and every
//! receipt is fenced by the connection that heard it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::jobs::Recorded;
use pgwa_core::fence::Fence;
use pgwa_core::wa::ReceiptKind;

/// A receipt as a session's connection heard it.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub fence: Fence,
    pub message_id: String,
    pub kind: ReceiptKind,
    pub at: DateTime<Utc>,
}

/// One message's receipts folded together: its furthest status, when it was first
/// delivered (a read receipt alone says it was delivered too) and when first read.
struct Folded<'a> {
    fence: &'a Fence,
    read: bool,
    delivered_at: DateTime<Utc>,
    read_at: Option<DateTime<Utc>>,
}

fn fold(receipts: &[Receipt]) -> HashMap<(&str, &str), Folded<'_>> {
    let mut by_message: HashMap<(&str, &str), Folded> = HashMap::new();
    for r in receipts {
        let read = r.kind == ReceiptKind::Read;
        let read_at = read.then_some(r.at);
        by_message
            .entry((r.fence.session.as_str(), r.message_id.as_str()))
            .and_modify(|f| {
                f.fence = &r.fence; // the newest connection's fence decides
                f.read |= read;
                f.delivered_at = f.delivered_at.min(r.at);
                f.read_at = match (f.read_at, read_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            })
            .or_insert(Folded { fence: &r.fence, read, delivered_at: r.at, read_at });
    }
    by_message
}

/// The receipts of one statement, folded by message, as the statement's arrays.
pub(crate) struct Columns<'a> {
    pub(crate) sessions: Vec<&'a str>,
    pub(crate) workers: Vec<Uuid>,
    pub(crate) epochs: Vec<i64>,
    pub(crate) messages: Vec<&'a str>,
    pub(crate) statuses: Vec<&'static str>,
    pub(crate) delivered_at: Vec<DateTime<Utc>>,
    pub(crate) read_at: Vec<Option<DateTime<Utc>>>,
}

/// Folds `receipts` by message into the receipt statement's parameters, $1 to $7.
pub(crate) fn columns(receipts: &[Receipt]) -> Columns<'_> {
    let folded = fold(receipts);
    let n = folded.len();
    let mut c = Columns {
        sessions: Vec::with_capacity(n),
        workers: Vec::with_capacity(n),
        epochs: Vec::with_capacity(n),
        messages: Vec::with_capacity(n),
        statuses: Vec::with_capacity(n),
        delivered_at: Vec::with_capacity(n),
        read_at: Vec::with_capacity(n),
    };
    for ((session, message), f) in folded {
        c.sessions.push(session);
        c.workers.push(f.fence.worker);
        c.epochs.push(f.fence.epoch);
        c.messages.push(message);
        c.statuses.push(if f.read { "read" } else { "delivered" });
        c.delivered_at.push(f.delivered_at);
        c.read_at.push(f.read_at);
    }
    c
}

/// Applies `receipts` in one statement and returns the jobs whose delivery moved, for
/// the `wa_outbound` announcement. Receipts from a connection that no longer holds its
/// session, for unknown messages, or that say nothing new change nothing.
pub async fn apply(db: impl PgExecutor<'_>, receipts: &[Receipt]) -> sqlx::Result<Vec<Recorded>> {
    let c = columns(receipts);
    if c.messages.is_empty() {
        return Ok(Vec::new());
    }
    // `j.message_id IS NOT NULL` lets the plan use the partial unique index jobs_message.
    let rows = sqlx::query!(
        r#"UPDATE wa.job_rows j
              SET delivery = r.status::wa.delivery_status,
                  delivered_at = coalesce(j.delivered_at, r.delivered_at),
                  read_at = coalesce(j.read_at, r.read_at)
             FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
                    AS r(session_id, worker, epoch, message_id, status, delivered_at, read_at)
             JOIN wa.sessions s ON s.id = r.session_id
            WHERE j.session_id = r.session_id AND j.message_id = r.message_id AND j.message_id IS NOT NULL
              AND j.delivery < r.status::wa.delivery_status
              AND wa._holds(s, r.worker, r.epoch)
        RETURNING j.id, j.session_id, j.message_id, j.delivery::text AS "delivery!""#,
        &c.sessions as &[&str],
        &c.workers,
        &c.epochs,
        &c.messages as &[&str],
        &c.statuses as &[&str],
        &c.delivered_at,
        &c.read_at as &[Option<DateTime<Utc>>],
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Recorded {
            id: r.id,
            session_id: r.session_id,
            message_id: r.message_id,
            delivery: Some(r.delivery),
            dead: false,
        })
        .collect())
}

/// Applies `receipts` and announces the jobs they moved after `recorded` (outcomes
/// committed before), in one transaction: the receipts cost no commit of their own.
/// With no receipts the announcement is a statement alone, without BEGIN and COMMIT.
pub async fn apply_and_announce(pool: &PgPool, receipts: &[Receipt], mut recorded: Vec<Recorded>) -> sqlx::Result<()> {
    if receipts.is_empty() {
        return super::jobs::announce_outbound(pool, &recorded).await.map(drop);
    }
    let mut tx = pool.begin().await?;
    recorded.extend(apply(&mut *tx, receipts).await?);
    super::jobs::announce_outbound(&mut *tx, &recorded).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(epoch: i64, message: &str, kind: ReceiptKind, secs: i64) -> Receipt {
        let fence = Fence { worker: Uuid::nil(), session: "s".into(), epoch };
        Receipt { fence, message_id: message.into(), kind, at: DateTime::from_timestamp(secs, 0).unwrap() }
    }

    #[test]
    fn a_message_folds_to_its_furthest_status_and_first_times() {
        let rs = [
            receipt(1, "m", ReceiptKind::Read, 30),
            receipt(1, "m", ReceiptKind::Delivered, 10),
            receipt(2, "m", ReceiptKind::Delivered, 20),
            receipt(1, "n", ReceiptKind::Delivered, 5),
        ];
        let f = fold(&rs);
        let m = &f[&("s", "m")];
        assert!(m.read);
        assert_eq!((m.delivered_at.timestamp(), m.read_at.map(|t| t.timestamp())), (10, Some(30)));
        assert_eq!(m.fence.epoch, 2);
        let n = &f[&("s", "n")];
        assert!(!n.read && n.read_at.is_none());
        assert_eq!(n.delivered_at.timestamp(), 5);
    }
}
