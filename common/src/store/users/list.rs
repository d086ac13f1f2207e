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
pub async fn list(
    client: &impl GenericClient,
    query: &UserQuery,
) -> Result<Vec<UserRecord>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users
         WHERE ($1::text IS NULL OR role = $1)
           AND ($2::text IS NULL OR email LIKE $2 OR lower(first_name) LIKE $2 OR lower(last_name) LIKE $2)
           AND ($3 OR deleted_at IS NULL)
           AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
           AND (NOT $8 OR deleted_at IS NOT NULL)
           AND ($9::bool IS NULL OR (email_verified_at IS NOT NULL) = $9)
           AND ($10::bool IS NULL OR EXISTS (SELECT 1 FROM user_mfa m
                WHERE m.user_id = users.id AND m.enabled_at IS NOT NULL) = $10)
         ORDER BY created_at DESC, id DESC
         LIMIT $6 OFFSET $7"
    );
    let role = query.role.map(Role::as_str);
    let prefix = query.prefix.as_deref().map(like_prefix);
    let after_at = query.after.map(|c| c.created_at);
    let after_id = query.after.map(|c| c.id);
    let rows = client
        .query(
            &sql,
            &[
                &role,
                &prefix,
                &query.include_deleted,
                &after_at,
                &after_id,
                &query.limit,
                &query.offset,
                &query.deleted_only,
                &query.verified,
                &query.mfa,
            ],
        )
        .await?;
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
