//! Listing and searching users for staff, with keyset cursors.

use super::*;

/// Position in the newest-first listing, for keyset pagination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl ListCursor {
    /// The opaque `nextCursor` of a page: base64url of `<created_at µs>|<id>`.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            self.created_at.timestamp_micros(),
            self.id
        ))
    }

    /// A cursor the caller sent back; `None` for anything [`ListCursor::encode`] could
    /// not have produced.
    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (micros, id) = text.split_once('|')?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: id.parse().ok()?,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub role: Option<Role>,
    /// Case-insensitive prefix of the email, first name or last name.
    pub prefix: Option<String>,
    pub include_deleted: bool,
    /// Only deleted users (admins).
    pub deleted_only: bool,
    /// Whether the address is verified; `None`: either.
    pub verified: Option<bool>,
    /// Whether a second factor is enabled; `None`: either.
    pub mfa: Option<bool>,
    pub after: Option<ListCursor>,
    pub limit: i64,
    pub offset: i64,
}

/// Escapes `%`, `_` and `\` so a search term is matched literally by `LIKE`.
fn like_prefix(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 1);
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Users newest first. Returns up to `limit` rows.
///
/// Only the filters that are set become conditions, so the planner sees the query it
/// runs: `deleted_at IS NOT NULL` uses its partial index, `role = $n` the role index,
/// instead of one plan for every combination (`$1 IS NULL OR …`) that scans everything.
pub async fn list(
    client: &impl GenericClient,
    query: &UserQuery,
) -> Result<Vec<UserRecord>, tokio_postgres::Error> {
    let role = query.role.map(Role::as_str);
    let prefix = query.prefix.as_deref().map(like_prefix);
    let after = query.after.map(|c| (c.created_at, c.id));
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
    if let Some(role) = &role {
        params.push(role);
        conditions.push(format!("role = ${}", params.len()));
    }
    if let Some(prefix) = &prefix {
        params.push(prefix);
        let n = params.len();
        conditions.push(format!(
            "(email LIKE ${n} OR lower(first_name) LIKE ${n} OR lower(last_name) LIKE ${n})"
        ));
    }
    if query.deleted_only {
        conditions.push("deleted_at IS NOT NULL".to_owned());
    } else if !query.include_deleted {
        conditions.push("deleted_at IS NULL".to_owned());
    }
    if let Some((at, id)) = &after {
        params.push(at);
        params.push(id);
        let n = params.len();
        conditions.push(format!("(created_at, id) < (${}, ${n})", n - 1));
    }
    match query.verified {
        Some(true) => conditions.push("email_verified_at IS NOT NULL".to_owned()),
        Some(false) => conditions.push("email_verified_at IS NULL".to_owned()),
        None => {}
    }
    if let Some(mfa) = query.mfa {
        conditions.push(format!(
            "{}EXISTS (SELECT 1 FROM user_mfa m WHERE m.user_id = users.id AND m.enabled_at IS NOT NULL)",
            if mfa { "" } else { "NOT " }
        ));
    }
    params.push(&query.limit);
    params.push(&query.offset);
    let n = params.len();
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users {filter}
         ORDER BY created_at DESC, id DESC
         LIMIT ${} OFFSET ${n}",
        n - 1
    );
    let rows = client.query(&sql, &params).await?;
    Ok(rows.iter().map(user_from_row).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_prefix_matches_wildcards_literally() {
        assert_eq!(like_prefix("A_b%"), "a\\_b\\%%");
        assert_eq!(like_prefix("x\\"), "x\\\\%");
    }
}
