//! Who an HTTP request speaks for, from `Authorization: Bearer <token>`: the admin token
//! (`http.admin_token`, every session) or a tenant's (`http.tenant_tokens`, its sessions
//! only). Shared by the QR endpoints and the operator console. A token in the URL
//! (`?token=`) is refused even when right: URLs end up in access logs, proxies and
//! browser history.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq;

use crate::Shared;

/// Which sessions a request may see: all (the admin token) or one tenant's.
pub enum Scope {
    All,
    Tenant(String),
}

impl Scope {
    /// The tenant to filter by; none for the admin.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Tenant(t) => Some(t),
        }
    }
}

/// Why a request was refused, with the status and a text that says what to do.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: &'static str,
}

const OFF: Refusal = Refusal {
    status: StatusCode::NOT_FOUND,
    message: "this endpoint is off: set http.admin_token (PGWA_HTTP__ADMIN_TOKEN) to enable it",
};
const IN_URL: Refusal = Refusal {
    status: StatusCode::UNAUTHORIZED,
    message: "the admin token is not accepted in the URL (`?token=`), where logs and browser history keep it: \
              send it as `Authorization: Bearer <token>`, and replace the token if that URL was shared",
};
const WRONG: Refusal = Refusal {
    status: StatusCode::UNAUTHORIZED,
    message: "missing or wrong admin token: send `Authorization: Bearer <http.admin_token>`",
};
const NOT_ADMIN: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    message: "a tenant's token does not open the operator console: it needs http.admin_token",
};

fn same(given: &str, expected: &str) -> bool {
    // The token guards account linking: compare without leaking where it differs.
    // (`ct_eq` on slices of different lengths is false, and the length is no secret.)
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// The request's scope: the admin token, or a tenant's token when `tenants` allows them.
pub fn scope(shared: &Shared, headers: &HeaderMap, query: &HashMap<String, String>, tenants: bool) -> Result<Scope, Refusal> {
    let http = &shared.cfg.http;
    let admin = http.admin_token.as_deref().filter(|t| !t.is_empty());
    let any_tenant = tenants && http.tenant_tokens.values().any(|t| !t.is_empty());
    if admin.is_none() && !any_tenant {
        return Err(OFF);
    }
    if query.contains_key("token") {
        return Err(IN_URL);
    }
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(given) = given else { return Err(WRONG) };
    if admin.is_some_and(|a| same(given, a)) {
        return Ok(Scope::All);
    }
    // Every tenant token is compared, so the time taken does not say which matched.
    let mut found = None;
    for (tenant, token) in &http.tenant_tokens {
        if same(given, token) {
            found = Some(tenant.clone());
        }
    }
    match found {
        Some(t) if tenants => Ok(Scope::Tenant(t)),
        Some(_) => Err(NOT_ADMIN),
        None => Err(WRONG),
    }
}

/// The admin token only (the console).
pub fn admin(shared: &Shared, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<(), Refusal> {
    scope(shared, headers, query, false).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_match_whole_and_an_empty_one_never() {
        assert!(same("s3cret", "s3cret"));
        assert!(!same("s3cre", "s3cret"));
        assert!(!same("s3cret2", "s3cret"));
        assert!(!same("", ""));
    }
}
