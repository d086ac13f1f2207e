//! The users repository: every SQL statement about `users` and `user_audit_log`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::domain::registration::Profile;
use crate::domain::role::Role;

/// A registration ready to be persisted: validated profile and a PHC hash.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub registration_id: Uuid,
    pub profile: Profile,
    pub password_hash: String,
    pub submitted_at: DateTime<Utc>,
    pub request_id: Option<String>,
    /// `user` for registrations; imports may bring another.
    pub role: Role,
    /// Imports: when the account was created where it comes from.
    pub created_at: Option<DateTime<Utc>>,
    /// Imports: the address was verified where it comes from (no verification mail).
    pub email_verified: bool,
    /// Imports: the import and line this user comes from; the insert adds to the
    /// import's `completed` count.
    pub import: Option<crate::events::registration::ImportLineRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// A new row (and its audit row) was written.
    Created { user_id: Uuid },
    /// This registration was persisted before (a redelivery): nothing written.
    AlreadyPersisted { user_id: Uuid },
    /// Another registration owns this email; the existing user is untouched.
    EmailTaken,
    /// Another user has this username; the existing user is untouched.
    UsernameTaken,
}

/// The batch insert of new users; `$13` (created_at) may be null: now.
/// The batch's statements are prepared once per connection (a consumer runs the same
/// few statements thousands of times; parsing and planning each again cost the server
/// more than some of the inserts).
macro_rules! insert_users {
    ($conflict:literal) => {
        concat!(
            "INSERT INTO users (id, registration_id, email, first_name, last_name, gender, sex, occupation, password_hash, username, date_of_birth, role, created_at, updated_at, email_verified_at)
             SELECT i, r, e, f, l, g, s, o, h, u, b, ro, COALESCE(c, now()), COALESCE(c, now()), CASE WHEN v THEN now() END
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::date[], $12::text[], $13::timestamptz[], $14::bool[])
                  AS t(i, r, e, f, l, g, s, o, h, u, b, ro, c, v)",
            $conflict,
            " RETURNING id, registration_id"
        )
    };
}
const INSERT_USERS: &str = insert_users!("");
const INSERT_USERS_SKIPPING_CONFLICTS: &str = insert_users!(" ON CONFLICT DO NOTHING");

/// Which insert [`insert_batch`] tries first, learnt from the batches before: one per
/// writer (a consumer pipeline). Batches of at least [`PLAIN_INSERT_MIN`] users try the
/// plain insert while the last batch found no conflict; a batch with a redelivered
/// registration or a taken email or username makes the next ones check each row's
/// unique keys until one finds none. Only speed depends on it, never an outcome.
#[derive(Debug, Default)]
pub struct InsertHint {
    conflicts: std::sync::atomic::AtomicBool,
}

/// Below this a batch goes straight to the insert that checks unique keys: what the
/// plain insert saves is too little to risk doing the batch twice.
pub const PLAIN_INSERT_MIN: usize = 32;

impl InsertHint {
    /// Whether the last batch found a conflict (the next large one checks every row).
    pub fn expects_conflicts(&self) -> bool {
        self.conflicts.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn plain_insert_first(&self, users: usize) -> bool {
        users >= PLAIN_INSERT_MIN && !self.expects_conflicts()
    }
}

/// Writes a batch of users and their `user.registered` audit rows in one transaction.
/// Idempotent: rerunning the same batch writes nothing new and reports the same users.
/// Outcomes come back in input order.
pub async fn insert_batch(
    client: &mut deadpool_postgres::Client,
    users: &[NewUser],
    hint: &InsertHint,
) -> Result<Vec<InsertOutcome>, crate::store::user_events::OutboxError> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = users.iter().map(|_| Uuid::now_v7()).collect();
    let registration_ids: Vec<Uuid> = users.iter().map(|u| u.registration_id).collect();
    let emails: Vec<&str> = users.iter().map(|u| u.profile.email.as_str()).collect();
    let first: Vec<&str> = users
        .iter()
        .map(|u| u.profile.first_name.as_str())
        .collect();
    let last: Vec<&str> = users.iter().map(|u| u.profile.last_name.as_str()).collect();
    let gender: Vec<&str> = users.iter().map(|u| u.profile.gender.as_str()).collect();
    let sex: Vec<Option<&str>> = users
        .iter()
        .map(|u| u.profile.sex.map(|s| s.as_str()))
        .collect();
    let occupation: Vec<Option<&str>> = users
        .iter()
        .map(|u| u.profile.occupation.as_deref())
        .collect();
    let usernames: Vec<Option<&str>> = users
        .iter()
        .map(|u| u.profile.username.as_ref().map(|n| n.as_str()))
        .collect();
    let births: Vec<Option<chrono::NaiveDate>> =
        users.iter().map(|u| u.profile.date_of_birth).collect();
    let hashes: Vec<&str> = users.iter().map(|u| u.password_hash.as_str()).collect();
    let roles: Vec<&str> = users.iter().map(|u| u.role.as_str()).collect();
    let created: Vec<Option<DateTime<Utc>>> = users.iter().map(|u| u.created_at).collect();
    let verified: Vec<bool> = users.iter().map(|u| u.email_verified).collect();

    let tx = client.transaction().await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 14] = [
        &ids,
        &registration_ids,
        &emails,
        &first,
        &last,
        &gender,
        &sex,
        &occupation,
        &hashes,
        &usernames,
        &births,
        &roles,
        &created,
        &verified,
    ];
    // A large batch first tries the plain insert, under a savepoint: it costs the
    // server about a quarter less per row than checking every unique key before each
    // row. The first unique violation rolls it back and the batch takes the checking
    // insert below, as will the next batches until one of them finds no conflict.
    let mut inserted = None;
    if hint.plain_insert_first(users.len()) {
        tx.batch_execute("SAVEPOINT plain_insert").await?;
        match tx
            .query(&tx.prepare_cached(INSERT_USERS).await?, &params)
            .await
        {
            Ok(rows) => inserted = Some(rows),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT plain_insert")
                    .await?;
                hint.conflicts
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let inserted = match inserted {
        Some(rows) => rows,
        // ON CONFLICT DO NOTHING without a target covers every unique key: a
        // redelivered registration_id, an email or a username someone else owns. Rows
        // of one statement are inserted in order, so within a batch the earlier
        // registration of an email (or username) wins, as it would across batches.
        None => {
            let rows = tx
                .query(
                    &tx.prepare_cached(INSERT_USERS_SKIPPING_CONFLICTS).await?,
                    &params,
                )
                .await?;
            hint.conflicts.store(
                rows.len() < users.len(),
                std::sync::atomic::Ordering::Relaxed,
            );
            rows
        }
    };
    let created: std::collections::HashMap<Uuid, Uuid> = inserted
        .iter()
        .map(|r| (r.get::<_, Uuid>(1), r.get::<_, Uuid>(0)))
        .collect();

    let missing: Vec<Uuid> = registration_ids
        .iter()
        .copied()
        .filter(|r| !created.contains_key(r))
        .collect();
    let existing: std::collections::HashMap<Uuid, Uuid> = if missing.is_empty() {
        Default::default()
    } else {
        tx.query(
            &tx.prepare_cached(
                "SELECT registration_id, id FROM users WHERE registration_id = ANY($1)",
            )
            .await?,
            &[&missing],
        )
        .await?
        .iter()
        .map(|r| (r.get::<_, Uuid>(0), r.get::<_, Uuid>(1)))
        .collect()
    };
    // Registrations that are neither new nor redelivered lost to an existing email or
    // username; which one decides the failure reason (the email first).
    let lost: Vec<&NewUser> = users
        .iter()
        .filter(|u| {
            !created.contains_key(&u.registration_id) && !existing.contains_key(&u.registration_id)
        })
        .collect();
    let taken_emails: std::collections::HashSet<String> = if lost.is_empty() {
        Default::default()
    } else {
        let lost_emails: Vec<&str> = lost.iter().map(|u| u.profile.email.as_str()).collect();
        tx.query(
            &tx.prepare_cached("SELECT email FROM users WHERE email = ANY($1)")
                .await?,
            &[&lost_emails],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
    };

    let mut audit_users = Vec::new();
    let mut audit_registrations = Vec::new();
    let mut audit_details = Vec::new();
    let mut events = Vec::new();
    let mut unverified = Vec::new();
    // A record delivered twice in one batch (a retried produce) was inserted once: its
    // first occurrence created the user, the others are "already persisted".
    let mut counted = std::collections::HashSet::new();
    let mut imported: std::collections::HashMap<Uuid, i64> = Default::default();
    let outcomes = users
        .iter()
        .map(|u| {
            let first_occurrence = counted.insert(u.registration_id);
            if let Some(&user_id) = created.get(&u.registration_id).filter(|_| first_occurrence) {
                audit_users.push(user_id);
                audit_registrations.push(u.registration_id);
                audit_details.push(serde_json::json!({
                    "source": "registration",
                    "submittedAt": u.submitted_at.to_rfc3339(),
                    "requestId": u.request_id,
                }));
                let mut event = crate::events::user::UserEvent::new(
                    crate::events::user::UserEventType::Registered,
                    user_id,
                    1,
                )
                .actor(Some(user_id))
                .request(u.request_id.clone())
                .email(u.profile.email.as_str());
                event.role = Some(u.role.as_str().to_owned());
                events.push(event);
                if !u.email_verified {
                    unverified.push(user_id);
                }
                if let Some(import) = u.import {
                    *imported.entry(import.import_id).or_default() += 1;
                }
                InsertOutcome::Created { user_id }
            } else if let Some(&user_id) = existing
                .get(&u.registration_id)
                .or_else(|| created.get(&u.registration_id))
            {
                InsertOutcome::AlreadyPersisted { user_id }
            } else if taken_emails.contains(u.profile.email.as_str())
                || u.profile.username.is_none()
            {
                InsertOutcome::EmailTaken
            } else {
                InsertOutcome::UsernameTaken
            }
        })
        .collect();

    if !audit_users.is_empty() {
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO user_audit_log (user_id, action, actor_id, registration_id, details)
                 SELECT u, 'user.registered', u, r, d FROM UNNEST($1::uuid[], $2::uuid[], $3::jsonb[]) AS t(u, r, d)",
            )
            .await?,
            &[&audit_users, &audit_registrations, &audit_details],
        )
        .await?;
        let append = tx.prepare_cached(crate::store::user_events::APPEND).await?;
        crate::store::user_events::append_prepared(&*tx, &append, &events).await?;
    }
    if !unverified.is_empty() {
        // Each new user gets a verification mail, queued in the same transaction.
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO mail_outbox (id, user_id, kind, recipient)
                 SELECT gen_random_uuid(), u.id, 'verify_email', u.email FROM users u WHERE u.id = ANY($1)",
            )
            .await?,
            &[&unverified],
        )
        .await?;
    }
    if !imported.is_empty() {
        // Counted with the inserts they count, so a redelivered batch (whose users
        // exist) adds nothing: `completed` is exact. In id order, so two batches that
        // touch the same imports lock their rows in the same order (no deadlock); last
        // in the transaction, so the row lock is held only until the commit.
        let mut imported: Vec<(Uuid, i64)> = imported.into_iter().collect();
        imported.sort_unstable();
        let (imports, counts): (Vec<Uuid>, Vec<i64>) = imported.into_iter().unzip();
        tx.execute(
            &tx.prepare_cached(
                "UPDATE imports i SET completed = i.completed + t.n
                 FROM UNNEST($1::uuid[], $2::bigint[]) AS t(id, n) WHERE i.id = t.id",
            )
            .await?,
            &[&imports, &counts],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Registrations in `ids` that are already persisted, so the consumer can skip hashing
/// redelivered messages.
pub async fn persisted_registrations(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let rows = client
        .query(
            "SELECT registration_id FROM users WHERE registration_id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A live user's registration, for the polling endpoint's fallback.
#[derive(Debug, Clone)]
pub struct RegisteredUser {
    pub user_id: Uuid,
    pub registration_id: Uuid,
    pub created_at: DateTime<Utc>,
}

pub async fn find_registered_by_email(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<RegisteredUser>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT id, registration_id, created_at FROM users WHERE email = $1 AND deleted_at IS NULL",
            &[&email],
        )
        .await?;
    Ok(row.map(|r| RegisteredUser {
        user_id: r.get(0),
        registration_id: r.get(1),
        created_at: r.get(2),
    }))
}

/// A user as stored, password hash and version included: the api shows a view of it.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: Uuid,
    pub registration_id: Uuid,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub gender: Option<String>,
    pub sex: Option<String>,
    pub occupation: Option<String>,
    pub username: Option<String>,
    pub date_of_birth: Option<chrono::NaiveDate>,
    pub role: Role,
    pub password_hash: String,
    /// Incremented by every change; the api's entity tag.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub erased_at: Option<DateTime<Utc>>,
    /// When `email` was verified; `None` until a mailed link was followed.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// A new address waiting for its verification; `email` changes only then.
    pub pending_email: Option<String>,
}

impl UserRecord {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

const USER_COLUMNS: &str = "id, registration_id, email, first_name, last_name, gender, sex, occupation, role, password_hash, version, created_at, updated_at, deleted_at, erased_at, username, date_of_birth, email_verified_at, pending_email";

fn user_from_row(r: &tokio_postgres::Row) -> UserRecord {
    UserRecord {
        id: r.get(0),
        registration_id: r.get(1),
        email: r.get(2),
        first_name: r.get(3),
        last_name: r.get(4),
        gender: r.get(5),
        sex: r.get(6),
        occupation: r.get(7),
        // The CHECK constraint admits only the three roles.
        role: Role::parse(r.get::<_, &str>(8)).unwrap_or(Role::User),
        password_hash: r.get(9),
        version: r.get(10),
        created_at: r.get(11),
        updated_at: r.get(12),
        deleted_at: r.get(13),
        erased_at: r.get(14),
        username: r.get(15),
        date_of_birth: r.get(16),
        email_verified_at: r.get(17),
        pending_email: r.get(18),
    }
}

/// A user by id, deleted ones included.
pub async fn find_by_id(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    Ok(client
        .query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(user_from_row))
}

/// The same, locking the row until the transaction ends.
pub async fn lock_by_id(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE");
    Ok(client
        .query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(user_from_row))
}

/// An arbitrary constant: the transaction lock taken before a change that could leave
/// no admin, so two such changes cannot both see the other admin.
const ADMIN_CHANGE_LOCK: i64 = 0x5245_4741_444d_494e;

/// Live admins other than `id`, counted under a transaction-scoped lock that serialises
/// every demotion and deletion of an admin. Call it on the change's transaction.
pub async fn other_live_admins(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<i64, tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&ADMIN_CHANGE_LOCK])
        .await?;
    let row = client
        .query_one(
            "SELECT count(*) FROM users WHERE role = 'admin' AND deleted_at IS NULL AND id <> $1",
            &[&id],
        )
        .await?;
    Ok(row.get(0))
}

/// A user's role and whether it is deleted: what an access token's claims are checked
/// against before a write.
pub async fn standing(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<(Role, bool)>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT role, deleted_at IS NOT NULL FROM users WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| {
        (
            Role::parse(r.get::<_, &str>(0)).unwrap_or(Role::User),
            r.get(1),
        )
    }))
}

/// A user by (normalised) email, deleted ones included.
pub async fn find_by_email(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    find_one(client, "email", email).await
}

/// A user by (lower-cased) username, deleted ones included.
pub async fn find_by_username(
    client: &impl GenericClient,
    username: &str,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    find_one(client, "username", username).await
}

/// The user whose unique text `column` (a name of this module, never input) is `value`.
async fn find_one(
    client: &impl GenericClient,
    column: &'static str,
    value: &str,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = $1");
    Ok(client
        .query_opt(&sql, &[&value])
        .await?
        .as_ref()
        .map(user_from_row))
}

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
            ],
        )
        .await?;
    Ok(rows.iter().map(user_from_row).collect())
}

/// Who did what, from where: the context of an audit row.
#[derive(Debug, Clone, Default)]
pub struct AuditContext {
    pub actor_id: Option<Uuid>,
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

/// Writes one audit row. Call it on the transaction of the change it records.
pub async fn audit(
    client: &impl GenericClient,
    user_id: Uuid,
    action: &str,
    context: &AuditContext,
    details: serde_json::Value,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO user_audit_log (user_id, action, actor_id, ip, user_agent, details)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &user_id,
                &action,
                &context.actor_id,
                &context.ip,
                &context.user_agent,
                &details,
            ],
        )
        .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: i64,
    pub action: String,
    pub actor_id: Option<Uuid>,
    pub registration_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A user's audit rows, newest first; `before` is a keyset cursor (an audit id).
pub async fn audit_trail(
    client: &impl GenericClient,
    user_id: Uuid,
    limit: i64,
    offset: i64,
    before: Option<i64>,
) -> Result<Vec<AuditRecord>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, action, actor_id, registration_id, ip, user_agent, details, created_at
             FROM user_audit_log
             WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3 OFFSET $4",
            &[&user_id, &before, &limit, &offset],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AuditRecord {
            id: r.get(0),
            action: r.get(1),
            actor_id: r.get(2),
            registration_id: r.get(3),
            ip: r
                .get::<_, Option<std::net::IpAddr>>(4)
                .map(|ip| ip.to_string()),
            user_agent: r.get(5),
            details: r.get(6),
            created_at: r.get(7),
        })
        .collect())
}

/// The columns a profile change may set; `None` leaves a column as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub gender: Option<String>,
    pub sex: Option<String>,
    pub occupation: Option<String>,
    pub username: Option<String>,
    pub date_of_birth: Option<chrono::NaiveDate>,
    pub role: Option<Role>,
    pub password_hash: Option<String>,
}

/// Applies `changes` to a live user and increments its version. Fails with a unique
/// violation when the new email or username belongs to another account
/// (`users_email_key`, `users_username_key`).
pub async fn update(
    client: &impl GenericClient,
    id: Uuid,
    changes: &UserChanges,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let sql = format!(
        "UPDATE users SET
            email = COALESCE($2, email),
            first_name = COALESCE($3, first_name),
            last_name = COALESCE($4, last_name),
            gender = COALESCE($5, gender),
            sex = COALESCE($6, sex),
            occupation = COALESCE($7, occupation),
            role = COALESCE($8, role),
            password_hash = COALESCE($9, password_hash),
            username = COALESCE($10, username),
            date_of_birth = COALESCE($11, date_of_birth),
            email_verified_at = CASE WHEN $2 IS NOT NULL AND $2 <> email THEN NULL ELSE email_verified_at END,
            version = version + 1,
            updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL
         RETURNING {USER_COLUMNS}"
    );
    let role = changes.role.map(Role::as_str);
    Ok(client
        .query_opt(
            &sql,
            &[
                &id,
                &changes.email,
                &changes.first_name,
                &changes.last_name,
                &changes.gender,
                &changes.sex,
                &changes.occupation,
                &role,
                &changes.password_hash,
                &changes.username,
                &changes.date_of_birth,
            ],
        )
        .await?
        .as_ref()
        .map(user_from_row))
}

/// Replaces a hash with a stronger one after a successful login, unless the password
/// changed meanwhile. Not a profile change: the version stays.
pub async fn upgrade_password_hash(
    client: &impl GenericClient,
    id: Uuid,
    old_hash: &str,
    new_hash: &str,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL",
            &[&id, &old_hash, &new_hash],
        )
        .await?;
    Ok(n == 1)
}

/// Records a requested email change: the new address waits until it is verified.
pub async fn set_pending_email(
    client: &impl GenericClient,
    id: Uuid,
    pending: &str,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let sql = format!(
        "UPDATE users SET pending_email = $2, version = version + 1, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
    );
    Ok(client
        .query_opt(&sql, &[&id, &pending])
        .await?
        .as_ref()
        .map(user_from_row))
}

/// Marks `email` verified: the current address, or the pending one, which then becomes
/// the address. Fails with a unique violation when another account took the address
/// meanwhile. `None`: the user is gone or the address is neither of them any more.
pub async fn verify_email(
    client: &impl GenericClient,
    id: Uuid,
    email: &str,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let sql = format!(
        "UPDATE users SET
            email = $2,
            pending_email = CASE WHEN pending_email = $2 THEN NULL ELSE pending_email END,
            email_verified_at = now(), version = version + 1, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL AND (email = $2 OR pending_email = $2)
         RETURNING {USER_COLUMNS}"
    );
    Ok(client
        .query_opt(&sql, &[&id, &email])
        .await?
        .as_ref()
        .map(user_from_row))
}

/// Sets a new password hash (a reset); the version moves, as for any change.
pub async fn set_password_hash(
    client: &impl GenericClient,
    id: Uuid,
    hash: &str,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE users SET password_hash = $2, version = version + 1, updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL",
            &[&id, &hash],
        )
        .await?;
    Ok(n == 1)
}

/// Soft delete: the row stays (for audit and uniqueness), login is refused.
pub async fn soft_delete(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE users SET deleted_at = now(), updated_at = now(), version = version + 1
             WHERE id = $1 AND deleted_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(n == 1)
}

/// GDPR erasure: every personal field replaced, the password made unusable, the audit
/// trail kept without addresses, user agents or data keys, the user's data removed.
pub async fn erase(client: &impl GenericClient, id: Uuid) -> Result<bool, tokio_postgres::Error> {
    let placeholder = format!("erased-{}@erased.invalid", id.simple());
    let n = client
        .execute(
            "UPDATE users SET email = $2, first_name = NULL, last_name = NULL, gender = NULL,
                 sex = NULL, occupation = NULL, username = NULL, date_of_birth = NULL,
                 password_hash = '!erased', pending_email = NULL,
                 deleted_at = COALESCE(deleted_at, now()), erased_at = now(),
                 updated_at = now(), version = version + 1
             WHERE id = $1 AND erased_at IS NULL",
            &[&id, &placeholder],
        )
        .await?;
    if n == 0 {
        return Ok(false);
    }
    client
        .execute(
            "UPDATE user_audit_log SET ip = NULL, user_agent = NULL, details = details - 'key' - 'requestId'
             WHERE user_id = $1 OR actor_id = $1",
            &[&id],
        )
        .await?;
    // Rows elsewhere that name the address: the account's events lose it (published
    // ones leave the outbox, the topic's own retention is the operator's; unpublished
    // ones are published without it, so their sequence has no gap). An import keeps
    // counts and line numbers, never addresses.
    scrub_unsent_events(client, id).await?;
    for sql in [
        "DELETE FROM data_store WHERE user_id = $1",
        "DELETE FROM account_tokens WHERE user_id = $1",
        "DELETE FROM mail_outbox WHERE user_id = $1",
        "DELETE FROM mfa_recovery_codes WHERE user_id = $1",
        "DELETE FROM user_mfa WHERE user_id = $1",
    ] {
        client.execute(sql, &[&id]).await?;
    }
    Ok(true)
}

/// Deletes the account's published events and rewrites its unpublished ones without
/// their email (erasure). One the relay publishes meanwhile stays, without the email,
/// until the retention purge.
async fn scrub_unsent_events(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    use crate::events::user::UserEvent;
    client
        .execute(
            "DELETE FROM user_event_outbox WHERE user_id = $1
             AND seq <= (SELECT published_seq FROM user_event_relay)",
            &[&id],
        )
        .await?;
    let rows = client
        .query(
            "SELECT seq, payload FROM user_event_outbox WHERE user_id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    for row in rows {
        let seq: i64 = row.get(0);
        let scrubbed = UserEvent::decode(row.get(1)).ok().and_then(|mut e| {
            e.email = None;
            e.encode().ok()
        });
        match scrubbed {
            Some(payload) => {
                client
                    .execute(
                        "UPDATE user_event_outbox SET payload = $2 WHERE seq = $1",
                        &[&seq, &payload],
                    )
                    .await?;
            }
            // Not an event this build reads: it cannot be scrubbed, so it goes.
            None => {
                client
                    .execute("DELETE FROM user_event_outbox WHERE seq = $1", &[&seq])
                    .await?;
            }
        }
    }
    Ok(())
}

/// Creates an account directly (not through the registration pipeline), for
/// `api create-admin`. Profile answers stay empty; the user can fill them in.
pub async fn create_account(
    client: &impl GenericClient,
    email: &str,
    password_hash: &str,
    role: Role,
    context: &AuditContext,
) -> Result<Uuid, tokio_postgres::Error> {
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO users (id, registration_id, email, password_hash, role) VALUES ($1, $2, $3, $4, $5)",
            &[&id, &Uuid::now_v7(), &email, &password_hash, &role.as_str()],
        )
        .await?;
    audit(
        client,
        id,
        "user.created",
        context,
        serde_json::json!({ "source": "create-admin", "role": role.as_str() }),
    )
    .await?;
    Ok(id)
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
