//! SCIM 2.0 provisioning: the bearer tokens of SCIM clients (SHA-256 digests), the
//! user queries a SCIM filter becomes, and the write of a SCIM user's attributes.
//!
//! A filter arrives here already checked and mapped onto [`Field`]s by the api, so every
//! column and JSON path in the SQL built below comes from this module, never from input;
//! values are always bound parameters.

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::store::users::{user_from_row, UserRecord, USER_COLUMNS};

/// A SCIM client's token as stored (never the token itself).
#[derive(Debug, Clone)]
pub struct ScimToken {
    pub id: Uuid,
    pub name: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const TOKEN_COLUMNS: &str =
    "id, name, created_by, created_at, expires_at, last_used_at, revoked_at";

fn token_from_row(r: &tokio_postgres::Row) -> ScimToken {
    ScimToken {
        id: r.get(0),
        name: r.get(1),
        created_by: r.get(2),
        created_at: r.get(3),
        expires_at: r.get(4),
        last_used_at: r.get(5),
        revoked_at: r.get(6),
    }
}

pub async fn insert_token(
    client: &impl GenericClient,
    id: Uuid,
    name: &str,
    digest: &[u8],
    created_by: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<ScimToken, tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO scim_tokens (id, name, token_hash, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING {TOKEN_COLUMNS}"
    );
    let row = client
        .query_one(&sql, &[&id, &name, &digest, &created_by, &expires_at])
        .await?;
    Ok(token_from_row(&row))
}

/// Every token, newest first, revoked ones included.
pub async fn list_tokens(
    client: &impl GenericClient,
) -> Result<Vec<ScimToken>, tokio_postgres::Error> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM scim_tokens ORDER BY created_at DESC");
    Ok(client
        .query(&sql, &[])
        .await?
        .iter()
        .map(token_from_row)
        .collect())
}

/// Revokes a live token; `None` when there is no such live token.
pub async fn revoke_token(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<ScimToken>, tokio_postgres::Error> {
    let sql = format!(
        "UPDATE scim_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL
         RETURNING {TOKEN_COLUMNS}"
    );
    Ok(client
        .query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(token_from_row))
}

/// The live (not revoked, not expired) token with this digest, noting its use at most
/// once a minute.
pub async fn authenticate(
    client: &impl GenericClient,
    digest: &[u8],
) -> Result<Option<ScimToken>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM scim_tokens
         WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
    );
    let Some(token) = client
        .query_opt(&sql, &[&digest])
        .await?
        .as_ref()
        .map(token_from_row)
    else {
        return Ok(None);
    };
    if token
        .last_used_at
        .is_none_or(|t| t < Utc::now() - chrono::Duration::minutes(1))
    {
        client
            .execute(
                "UPDATE scim_tokens SET last_used_at = now() WHERE id = $1",
                &[&token.id],
            )
            .await?;
    }
    Ok(Some(token))
}

/// What a SCIM filter may test, with how it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `id` (exact).
    Id,
    /// `userName`: the SCIM name, or the email of an account without one.
    UserName,
    /// `emails.value`: the account's address.
    Email,
    ExternalId,
    GivenName,
    FamilyName,
    /// `title`: the occupation.
    Title,
    /// `active`: not deactivated.
    Active,
    /// `meta.created`.
    Created,
    /// `meta.lastModified`.
    LastModified,
    /// `groups.value`/`groups.display`: the role.
    Role,
    /// An attribute kept in `scim_attributes`: its path of object keys (the first may
    /// be a schema URN).
    Stored(Vec<String>),
    /// A sub-attribute of the elements of a multi-valued attribute in
    /// `scim_attributes`: the array's path and the sub-attribute.
    StoredElement {
        array: Vec<String>,
        sub: String,
    },
}

/// How a value compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Contains,
    StartsWith,
    EndsWith,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A value to compare with.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Bool(bool),
    Time(DateTime<Utc>),
    Uuid(Uuid),
}

/// A filter over users, in terms of [`Field`]s.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare {
        field: Field,
        op: Op,
        value: Value,
        /// Compared without regard to case (SCIM `caseExact: false`).
        ignore_case: bool,
    },
    Present(Field),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Not(Box<Condition>),
    /// No user matches (a comparison that can never hold, such as `id eq "not-a-uuid"`).
    Nothing,
}

/// The order of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub field: Field,
    pub descending: bool,
}

/// Builds the SQL of a [`Condition`] with its bound parameters.
struct Builder {
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

/// A JSON path, bound as a `text[]` parameter.
fn json_path(path: &[String]) -> Vec<String> {
    path.to_vec()
}

fn like_pattern(op: Op, text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    match op {
        Op::Contains => format!("%{escaped}%"),
        Op::StartsWith => format!("{escaped}%"),
        _ => format!("%{escaped}"),
    }
}

impl Builder {
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    /// The SQL expression of a field's text (or typed) value.
    fn column(&mut self, field: &Field) -> String {
        match field {
            Field::Id => "u.id".into(),
            Field::UserName => "COALESCE(u.scim_user_name, u.email)".into(),
            Field::Email => "u.email".into(),
            Field::ExternalId => "u.external_id".into(),
            Field::GivenName => "u.first_name".into(),
            Field::FamilyName => "u.last_name".into(),
            Field::Title => "u.occupation".into(),
            Field::Active => "(u.disabled_at IS NULL)".into(),
            Field::Created => "u.created_at".into(),
            Field::LastModified => "u.updated_at".into(),
            Field::Role => "u.role".into(),
            Field::Stored(path) => {
                let p = self.bind(json_path(path));
                format!("(u.scim_attributes #>> {p}::text[])")
            }
            Field::StoredElement { sub, .. } => {
                let p = self.bind(sub.clone());
                format!("(e ->> {p})")
            }
        }
    }

    fn compare(&mut self, column: &str, op: Op, value: &Value, ignore_case: bool) -> String {
        let folded = |t: &str| {
            if ignore_case {
                t.to_lowercase()
            } else {
                t.to_owned()
            }
        };
        let left = match value {
            Value::Text(_) if ignore_case => format!("lower({column})"),
            _ => column.to_owned(),
        };
        let right = match (value, op) {
            (Value::Text(t), Op::Contains | Op::StartsWith | Op::EndsWith) => {
                let pattern = self.bind(like_pattern(op, &folded(t)));
                return format!("{left} LIKE {pattern} ESCAPE '\\'");
            }
            // The api admits substring operators on strings only.
            (_, Op::Contains | Op::StartsWith | Op::EndsWith) => return "false".into(),
            (Value::Text(t), _) => self.bind(folded(t)),
            (Value::Bool(b), _) => self.bind(*b),
            (Value::Time(t), _) => self.bind(*t),
            (Value::Uuid(u), _) => self.bind(*u),
        };
        match op {
            Op::Eq => format!("{left} = {right}"),
            Op::Ne => format!("({left} IS NULL OR {left} <> {right})"),
            Op::Gt => format!("{left} > {right}"),
            Op::Ge => format!("{left} >= {right}"),
            Op::Lt => format!("{left} < {right}"),
            _ => format!("{left} <= {right}"),
        }
    }

    fn build(&mut self, c: &Condition) -> String {
        match c {
            Condition::Nothing => "false".into(),
            Condition::And(a, b) => format!("({} AND {})", self.build(a), self.build(b)),
            Condition::Or(a, b) => format!("({} OR {})", self.build(a), self.build(b)),
            Condition::Not(a) => format!("(NOT COALESCE({}, false))", self.build(a)),
            Condition::Present(field) => match field {
                Field::Active | Field::Id | Field::UserName | Field::Email | Field::Role => {
                    "true".into()
                }
                Field::Created | Field::LastModified => "true".into(),
                Field::StoredElement { array, sub } => {
                    let a = self.bind(json_path(array));
                    let s = self.bind(sub.clone());
                    format!(
                        "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(u.scim_attributes #> {a}::text[]) = 'array' THEN u.scim_attributes #> {a}::text[] ELSE '[]'::jsonb END) e WHERE COALESCE(e ->> {s}, '') <> '')"
                    )
                }
                Field::Stored(path) => {
                    let p = self.bind(json_path(path));
                    format!(
                        "(u.scim_attributes #> {p}::text[] IS NOT NULL AND u.scim_attributes #> {p}::text[] NOT IN ('null'::jsonb, '\"\"'::jsonb, '[]'::jsonb, '{{}}'::jsonb))"
                    )
                }
                other => {
                    let col = self.column(other);
                    format!("COALESCE({col}, '') <> ''")
                }
            },
            Condition::Compare {
                field: Field::StoredElement { array, sub },
                op,
                value,
                ignore_case,
            } => {
                let a = self.bind(json_path(array));
                let s = self.bind(sub.clone());
                let test = self.compare(&format!("(e ->> {s})"), *op, value, *ignore_case);
                format!(
                    "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(u.scim_attributes #> {a}::text[]) = 'array' THEN u.scim_attributes #> {a}::text[] ELSE '[]'::jsonb END) e WHERE {test})"
                )
            }
            Condition::Compare {
                field,
                op,
                value,
                ignore_case,
            } => {
                let col = self.column(field);
                self.compare(&col, *op, value, *ignore_case)
            }
        }
    }
}

/// A page of live users matching `condition`, in `sort` order (then by id), from the
/// 0-based `offset`; and how many match in all.
pub async fn query_users(
    client: &impl GenericClient,
    condition: Option<&Condition>,
    sort: Option<&Sort>,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<UserRecord>), tokio_postgres::Error> {
    let mut b = Builder { params: Vec::new() };
    let filter = condition.map_or_else(|| "true".to_owned(), |c| b.build(c));
    let count_sql =
        format!("SELECT count(*) FROM users u WHERE u.deleted_at IS NULL AND ({filter})");
    let total: i64 = {
        let params: Vec<&(dyn ToSql + Sync)> = b
            .params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        client.query_one(&count_sql, &params).await?.get(0)
    };
    if limit == 0 || total <= offset {
        return Ok((total, Vec::new()));
    }
    // The order's parameters come after the filter's.
    let order = match sort {
        Some(s) => {
            let col = b.column(&s.field);
            let dir = if s.descending { "DESC" } else { "ASC" };
            format!("{col} {dir} NULLS LAST, u.id {dir}")
        }
        None => "u.created_at, u.id".to_owned(),
    };
    let columns = USER_COLUMNS
        .split(", ")
        .map(|c| format!("u.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let n = b.params.len();
    let page_sql = format!(
        "SELECT {columns} FROM users u WHERE u.deleted_at IS NULL AND ({filter})
         ORDER BY {order} OFFSET ${} LIMIT ${}",
        n + 1,
        n + 2
    );
    let mut page_params: Vec<&(dyn ToSql + Sync)> = b
        .params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    page_params.push(&offset);
    page_params.push(&limit);
    let rows = client.query(&page_sql, &page_params).await?;
    Ok((total, rows.iter().map(user_from_row).collect()))
}

/// The live account named `user_name` (its SCIM userName, or its email when it has
/// none), case-insensitive.
pub async fn find_by_user_name(
    client: &impl GenericClient,
    user_name: &str,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users
         WHERE lower(COALESCE(scim_user_name, email)) = lower($1) AND deleted_at IS NULL"
    );
    Ok(client
        .query_opt(&sql, &[&user_name])
        .await?
        .as_ref()
        .map(user_from_row))
}

/// A user's attributes as SCIM writes them, all at once.
#[derive(Debug, Clone)]
pub struct ScimWrite {
    pub email: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<String>,
    pub attributes: Option<serde_json::Value>,
    pub active: bool,
}

/// Writes a live user's SCIM attributes and increments its version. An address change
/// is taken as verified: the identity provider vouches for it. Fails with a unique
/// violation when the email or userName belongs to another account.
pub async fn write_user(
    client: &impl GenericClient,
    id: Uuid,
    w: &ScimWrite,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    // The userName is stored only when it is not simply the email.
    let user_name = (!w.user_name.eq_ignore_ascii_case(&w.email)).then_some(&w.user_name);
    let sql = format!(
        "UPDATE users SET
            email = $2,
            email_verified_at = CASE WHEN email = $2 THEN email_verified_at ELSE now() END,
            pending_email = CASE WHEN email = $2 THEN pending_email END,
            scim_user_name = $3, external_id = $4, first_name = $5, last_name = $6,
            occupation = $7, scim_attributes = $8,
            disabled_at = CASE WHEN $9 THEN NULL ELSE COALESCE(disabled_at, now()) END,
            version = version + 1, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL
         RETURNING {USER_COLUMNS}"
    );
    Ok(client
        .query_opt(
            &sql,
            &[
                &id,
                &w.email,
                &user_name,
                &w.external_id,
                &w.first_name,
                &w.last_name,
                &w.title,
                &w.attributes,
                &w.active,
            ],
        )
        .await?
        .as_ref()
        .map(user_from_row))
}

/// Up to `limit` live members of a role, oldest first: a group's members.
pub async fn role_members(
    client: &impl GenericClient,
    role: &str,
    limit: i64,
) -> Result<Vec<(Uuid, String)>, tokio_postgres::Error> {
    Ok(client
        .query(
            "SELECT id, COALESCE(scim_user_name, email) FROM users
             WHERE role = $1 AND deleted_at IS NULL ORDER BY created_at, id LIMIT $2",
            &[&role, &limit],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// How many live users hold a role.
pub async fn role_size(
    client: &impl GenericClient,
    role: &str,
) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM users WHERE role = $1 AND deleted_at IS NULL",
            &[&role],
        )
        .await?
        .get(0))
}
