//! The WhatsApp sides behind `pgwa_core::wa::WhatsApp`: whatsapp-rust with its keys in
//! Postgres (`rust`), and the in-process simulation for tests, trials and benchmarks
//! (`simulated`).

pub mod rust;
pub mod simulated;
