//! What a session is (`wa.session_status`) and what the app wants it to be
//! (`wa.desired_state`). The names are the Postgres enums' labels; `tests/enums.rs`
//! checks that both sides list the same ones.

use crate::pg_enum::pg_enum;

pg_enum!(
    /// What a worker observed (README "Session states").
    SessionStatus, "wa.session_status", {
        /// Nobody holds it, on purpose (desired = stopped).
        Stopped = "stopped",
        /// A worker took the lease and is connecting.
        Starting = "starting",
        AwaitingQr = "awaiting_qr",
        AwaitingPairCode = "awaiting_pair_code",
        Connected = "connected",
        /// Connection lost or session handed over; a worker will retry.
        Reconnecting = "reconnecting",
        /// Another client took the number (stream replaced): no reconnect.
        Conflict = "conflict",
        /// The phone removed this device: re-link needed.
        LoggedOut = "logged_out",
        /// Temporary ban, until status_until.
        Banned = "banned",
        /// Circuit breaker open, or an error that needs a person.
        Failed = "failed",
    }
);

pg_enum!(
    /// What the app wants a session to be; workers converge on it.
    Desired, "wa.desired_state", {
        Running = "running",
        Stopped = "stopped",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_unknown_ones_name_the_accepted() {
        for s in SessionStatus::ALL {
            assert_eq!(s.as_str().parse::<SessionStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        let e = "online".parse::<SessionStatus>().unwrap_err();
        assert!(e.contains("wa.session_status") && e.contains("awaiting_pair_code"), "{e}");
    }
}
