//! pgwa: a Postgres-native WhatsApp gateway. Apps enqueue with SQL; workers hold the
//! WhatsApp sessions under leases in Postgres and consume their jobs.

pub mod authdoc;
pub mod bench;
pub mod cli;
pub mod config;
pub mod db;
pub mod fence;
pub mod http;
pub mod import;
pub mod job;
pub mod logging;
pub mod metrics;
pub mod qr;
pub mod store;
pub mod testkit;
pub mod wa;
pub mod worker;
