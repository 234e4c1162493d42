//! pgwa: a Postgres-native WhatsApp gateway. Apps enqueue with SQL; workers hold the
//! WhatsApp sessions under leases in Postgres and consume their jobs.

pub mod config;
pub mod job;
pub mod wa;
pub mod worker;
pub mod db;
pub mod http;
pub mod metrics;
pub mod qr;
pub mod testkit;
pub mod authdoc;
pub mod bench;
pub mod cli;
pub mod import;
pub mod store;
