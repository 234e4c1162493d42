//! whatsapp-rust storage Backend on Postgres (issue 4).
