//! LISTEN on pgwa's channels. A notification only says where to look: its payload is
//! parsed by the caller and every decision re-reads the rows (docs/security.md).

use sqlx::PgPool;
use sqlx::postgres::PgListener;

/// One notification: its channel and its payload as sent.
#[derive(Debug, Clone)]
pub struct Notification {
    pub channel: String,
    pub payload: String,
}

/// A connection of its own that LISTENs on `channels`.
pub struct Listener(PgListener);

impl Listener {
    pub async fn connect(pool: &PgPool, channels: &[&str]) -> sqlx::Result<Self> {
        let mut l = PgListener::connect_with(pool).await?;
        l.listen_all(channels.iter().copied()).await?;
        Ok(Self(l))
    }

    /// The next notification; an error means the connection is gone.
    pub async fn recv(&mut self) -> sqlx::Result<Notification> {
        let n = self.0.recv().await?;
        Ok(Notification { channel: n.channel().to_owned(), payload: n.payload().to_owned() })
    }
}
