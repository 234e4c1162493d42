//! A loopback WhatsApp Web server: plays both the WhatsApp server and every
//! account's phone, so unmodified `whatsapp-rust` clients can link, log in and
//! exchange messages on this machine. A test host, never a production path.

pub mod accounts;
pub mod admin;
pub mod adopt;
pub mod calls;
pub mod conn;
pub mod contacts;
pub mod devices;
pub mod frames;
pub mod groups;
pub mod iq;
pub mod kick;
pub mod media;
pub mod nodes;
pub mod noise;
pub mod pair_code;
pub mod pairing;
pub mod plain_http;
pub mod prekeys;
pub mod relay;
pub mod server;
pub mod session;
pub mod state;
pub mod test_client;
pub mod usync;

pub use server::{Config, Server};
pub use test_client::TestClient;
