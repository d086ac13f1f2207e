//! Use cases: what the api does, one function per use case, independent of HTTP.
//!
//! Each function owns its transaction, its audit row and its Redis and Kafka steps, and
//! returns a typed result or a `ServiceError`. Handlers in `routes/` extract the request,
//! call one of these and turn the result into a body from `bodies/`.

pub mod accounts;
pub mod committed;
pub mod data;
pub mod email;
pub mod import;
pub mod mfa;
pub mod oidc;
pub mod operations;
pub mod passkeys;
pub mod passwordless;
pub mod registration;
pub mod scim;
pub mod social;
pub mod users;
pub mod webhooks;

pub use crate::failure::ServiceError;

use crate::state::AppState;

/// Who runs an admin use case: an admin through the API, or (`None`) the operator
/// through the CLI.
pub(crate) fn require_admin(actor: Option<&crate::caller::Caller>) -> Result<(), ServiceError> {
    match actor {
        Some(c) if !c.is_admin() => Err(ServiceError::Forbidden),
        _ => Ok(()),
    }
}

pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

/// A page size: 1-100, 20 when absent.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ServiceError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        l @ 1..=MAX_PAGE => Ok(l),
        _ => Err(ServiceError::invalid(
            "limit",
            format!("must be 1-{MAX_PAGE}"),
        )),
    }
}

pub fn page_offset(offset: Option<i64>) -> Result<i64, ServiceError> {
    match offset.unwrap_or(0) {
        o if o >= 0 => Ok(o),
        _ => Err(ServiceError::invalid("offset", "must not be negative")),
    }
}

/// One page of rows and the cursor of the next one.
#[derive(Debug)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub limit: i64,
    pub offset: Option<i64>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Cuts a `limit + 1` fetch to `limit` rows; the extra row says there is a next
    /// page, whose cursor `cursor` computes from the last row kept.
    pub fn from_fetch(
        mut rows: Vec<T>,
        limit: i64,
        offset: Option<i64>,
        cursor: impl Fn(&T) -> String,
    ) -> Self {
        let keep = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = rows.len() > keep;
        rows.truncate(keep);
        let next_cursor = more.then(|| rows.last().map(cursor)).flatten();
        Self {
            rows,
            limit,
            offset,
            next_cursor,
        }
    }
}

impl AppState {
    /// A pooled PostgreSQL connection, the checkout bounded by the configured timeout.
    pub async fn db(&self) -> Result<deadpool_postgres::Client, ServiceError> {
        tokio::time::timeout(self.pg_timeout, self.pg.get())
            .await
            .map_err(|_| {
                ServiceError::unavailable(anyhow::anyhow!(
                    "no PostgreSQL connection within {:?}",
                    self.pg_timeout
                ))
            })?
            .map_err(ServiceError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_limits_are_bounded() {
        assert_eq!(page_limit(None).unwrap(), 20);
        assert!(page_limit(Some(101)).is_err());
        assert!(page_limit(Some(0)).is_err());
        assert!(page_offset(Some(-1)).is_err());
    }

    #[test]
    fn a_fetch_of_one_more_row_than_the_limit_yields_a_next_cursor() {
        let page = Page::from_fetch(vec![1, 2, 3], 2, None, |n| n.to_string());
        assert_eq!(page.rows, [1, 2]);
        assert_eq!(page.next_cursor.as_deref(), Some("2"));
        let last = Page::from_fetch(vec![1, 2], 2, None, |n| n.to_string());
        assert_eq!(last.next_cursor, None);
    }
}
