//! The fences of a group-committed statement, as its arrays.
//!
//! A statement holding the writes of many sessions checks each distinct (session,
//! worker, epoch) fence once: its first CTE joins `wa.sessions` to these arrays `WITH
//! ORDINALITY AS u(id, worker, epoch, k)` and keeps the rows `wa._holds`, and each
//! written row names its fence by that `k`. So a row is written only under its own
//! session's fence, and the statement returns the `k`s that held.

use std::collections::HashMap;

use uuid::Uuid;

/// The distinct fences of a batch, in first-seen order.
#[derive(Default)]
pub(crate) struct BatchFences<'a> {
    pub sessions: Vec<&'a str>,
    pub workers: Vec<Uuid>,
    pub epochs: Vec<i64>,
    numbers: HashMap<(&'a str, Uuid, i64), i64>,
}

impl<'a> BatchFences<'a> {
    /// The number `k` (from 1, the statement's ordinality) of this fence, added if new.
    pub fn number(&mut self, session: &'a str, worker: Uuid, epoch: i64) -> i64 {
        *self.numbers.entry((session, worker, epoch)).or_insert_with(|| {
            self.sessions.push(session);
            self.workers.push(worker);
            self.epochs.push(epoch);
            self.sessions.len() as i64
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_distinct_fence_is_numbered_once_from_one() {
        let (w1, w2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut f = BatchFences::default();
        let ks = [f.number("a", w1, 1), f.number("b", w1, 1), f.number("a", w1, 1), f.number("a", w2, 1), f.number("a", w1, 2)];
        assert_eq!(ks, [1, 2, 1, 3, 4], "a repeated fence keeps its number; a new worker or epoch is a new fence");
        assert_eq!(f.sessions, ["a", "b", "a", "a"]);
        assert_eq!(f.workers, [w1, w1, w2, w1]);
        assert_eq!(f.epochs, [1, 1, 1, 2]);
    }
}
