//! Benchmarks behind `pgwa bench`: commands that print one JSON line of measured figures.

pub mod jobs;
pub mod store;
