//! pgwa's vocabulary, with no I/O of its own: the configuration, the fence, job kinds and
//! outcomes, backoff delays, metric names, the media-fetch policy, and the WhatsApp trait
//! with its events. Every other crate speaks these types; this one depends on none of them.

pub mod backoff;
pub mod config;
pub mod fence;
pub mod fetch_policy;
pub mod job;
pub mod metrics;
mod pg_enum;
pub mod session;
pub mod wa;
