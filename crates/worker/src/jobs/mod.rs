//! The job handlers, one module per kind; kinds and outcomes are `pgwa_core::job`.

pub mod close_session;
pub mod key_cleanup;
pub mod maintenance;
pub mod reconnect;
pub mod send;
