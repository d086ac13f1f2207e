//! The write path of registrations: persisting a batch the consumer validated (and
//! hashed), finding what a batch already persisted, and accounts created outside the
//! pipeline (`api create-admin`).

use super::*;

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
    /// SCIM: the provider's userName, externalId, other attributes and whether
    /// the account starts active.
    pub provisioning: Option<crate::events::registration::Provisioning>,
    /// A passkey-first sign-up: the passkey stored with the user (it has no password).
    pub passkey: Option<crate::events::registration::PasskeyCredential>,
    /// A first social sign-in: the upstream identity linked to the new account.
    pub identity: Option<crate::events::registration::UpstreamIdentity>,
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
            "INSERT INTO users (id, registration_id, email, first_name, last_name, gender, sex, occupation, password_hash, username, date_of_birth, role, created_at, updated_at, email_verified_at, scim_user_name, external_id, scim_attributes, disabled_at)
             SELECT i, r, e, f, l, g, s, o, h, u, b, ro, COALESCE(c, now()), COALESCE(c, now()), CASE WHEN v THEN now() END, su, x, en, CASE WHEN d THEN now() END
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::date[], $12::text[], $13::timestamptz[], $14::bool[], $15::text[], $16::text[], $17::jsonb[], $18::bool[])
                  AS t(i, r, e, f, l, g, s, o, h, u, b, ro, c, v, su, x, en, d)",
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
    let first: Vec<Option<&str>> = users
        .iter()
        .map(|u| u.profile.first_name.as_deref())
        .collect();
    let last: Vec<Option<&str>> = users
        .iter()
        .map(|u| u.profile.last_name.as_deref())
        .collect();
    let gender: Vec<Option<&str>> = users
        .iter()
        .map(|u| u.profile.gender.map(|g| g.as_str()))
        .collect();
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
    let provisioned = |f: fn(&crate::events::registration::Provisioning) -> Option<&str>| {
        users
            .iter()
            .map(|u| u.provisioning.as_ref().and_then(f))
            .collect::<Vec<Option<&str>>>()
    };
    let scim_user_names = provisioned(|p| Some(p.user_name.as_str()));
    let external_ids = provisioned(|p| p.external_id.as_deref());
    // Checked by the api; anything else is stored as no attributes rather than failing
    // the batch.
    let attributes: Vec<Option<serde_json::Value>> = users
        .iter()
        .map(|u| {
            u.provisioning
                .as_ref()
                .and_then(|p| p.attributes.as_deref())
                .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
                .filter(serde_json::Value::is_object)
        })
        .collect();
    let disabled: Vec<bool> = users
        .iter()
        .map(|u| u.provisioning.as_ref().is_some_and(|p| !p.active))
        .collect();

    let tx = client.transaction().await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 18] = [
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
        &scim_user_names,
        &external_ids,
        &attributes,
        &disabled,
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
    // username (or SCIM userName); which one decides the failure reason (the email first).
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
    let mut passkeys = Vec::new();
    let mut identities = Vec::new();
    let outcomes = users
        .iter()
        .map(|u| {
            let first_occurrence = counted.insert(u.registration_id);
            if let Some(&user_id) = created.get(&u.registration_id).filter(|_| first_occurrence) {
                audit_users.push(user_id);
                audit_registrations.push(u.registration_id);
                audit_details.push(serde_json::json!({
                    "source": if u.provisioning.is_some() {
                        "scim".to_owned()
                    } else if let Some(i) = &u.identity {
                        format!("social:{}", i.provider)
                    } else {
                        "registration".to_owned()
                    },
                    "submittedAt": u.submitted_at.to_rfc3339(),
                    "requestId": u.request_id,
                    "credential": if u.passkey.is_some() {
                        "passkey"
                    } else if u.password_hash == crate::domain::password::NO_PASSWORD {
                        "none"
                    } else {
                        "password"
                    },
                }));
                if let Some(p) = &u.passkey {
                    passkeys.push((user_id, p));
                }
                if let Some(i) = &u.identity {
                    identities.push((user_id, i, u.profile.email.as_str()));
                }
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
                || (u.profile.username.is_none() && u.provisioning.is_none())
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
    for (user_id, p) in passkeys {
        // The api verified the ceremony and the consumer checked the JSON before the
        // batch (`Credential::Passkey` that does not parse is dead-lettered).
        let Ok(credential) = serde_json::from_str::<serde_json::Value>(&p.credential) else {
            continue;
        };
        let name = p.name.chars().take(100).collect::<String>();
        crate::store::passkeys::insert(
            &*tx,
            &crate::store::passkeys::NewPasskey {
                id: Uuid::now_v7(),
                user_id,
                credential_id: &p.credential_id,
                name: &name,
                credential: &credential,
                transports: &p.transports,
            },
        )
        .await?;
    }
    for (user_id, identity, email) in identities {
        crate::store::identities::link(
            &*tx,
            user_id,
            &identity.provider,
            &identity.subject,
            Some(email),
        )
        .await?;
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
