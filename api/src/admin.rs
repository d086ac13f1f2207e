//! `api create-admin`: creates an administrator account, or promotes an existing user.
//! The password comes from a file or an interactive prompt, never from an argument
//! (arguments are visible in `ps` and shell history).

use common::domain::email::Email;
use common::domain::password::PasswordHasherService;
use common::domain::password_policy::PasswordPolicy;
use common::domain::Role;
use common::events::user::{UserEvent, UserEventType};
use common::store::user_events;
use common::store::users::{self, AuditContext};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, PartialEq, Eq)]
pub enum AdminOutcome {
    Created(Uuid),
    Promoted(Uuid),
    AlreadyAdmin(Uuid),
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("PostgreSQL: {0}")]
    Database(#[from] anyhow::Error),
}

impl From<tokio_postgres::Error> for AdminError {
    fn from(e: tokio_postgres::Error) -> Self {
        AdminError::Database(e.into())
    }
}

/// Creates `email` as an admin with the password `read_password` returns, or promotes
/// the live user that has this email (its password unchanged, nothing read).
pub async fn create_admin(
    pool: &deadpool_postgres::Pool,
    hasher: &PasswordHasherService,
    policy: &PasswordPolicy,
    email: &str,
    read_password: impl FnOnce() -> Result<SecretString, String>,
) -> Result<AdminOutcome, AdminError> {
    let email = Email::parse(email).map_err(|e| AdminError::Invalid(format!("--email: {e}")))?;
    let mut client = pool
        .get()
        .await
        .map_err(|e| AdminError::Database(e.into()))?;
    let context = AuditContext::default();
    let tx = client.transaction().await?;
    if let Some(user) = users::find_by_email(&*tx, email.as_str()).await? {
        if user.is_deleted() {
            return Err(AdminError::Invalid(
                "this email belongs to a deleted account".to_owned(),
            ));
        }
        if user.role == Role::Admin {
            return Ok(AdminOutcome::AlreadyAdmin(user.id));
        }
        let changes = users::UserChanges {
            role: Some(Role::Admin),
            ..Default::default()
        };
        let promoted = users::update(&*tx, user.id, &changes).await?;
        let mut event = UserEvent::new(
            UserEventType::RoleChanged,
            user.id,
            promoted.map_or(user.version + 1, |u| u.version),
        );
        event.role = Some(Role::Admin.as_str().to_owned());
        event.previous_role = Some(user.role.as_str().to_owned());
        user_events::append(&*tx, &[event])
            .await
            .map_err(|e| AdminError::Database(e.into()))?;
        users::audit(
            &*tx,
            user.id,
            "user.updated",
            &context,
            json!({ "fields": ["role"], "role": { "from": user.role, "to": Role::Admin }, "source": "create-admin" }),
        )
        .await?;
        tx.commit().await?;
        return Ok(AdminOutcome::Promoted(user.id));
    }
    let password = read_password().map_err(AdminError::Invalid)?;
    policy
        .check("password", &password)
        .map_err(|e| AdminError::Invalid(format!("the password {}", e.message)))?;
    let hash = hasher
        .hash(&password)
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    let id = users::create_account(&*tx, email.as_str(), &hash, Role::Admin, &context).await?;
    let mut event = UserEvent::new(UserEventType::Registered, id, 1).email(email.as_str());
    event.role = Some(Role::Admin.as_str().to_owned());
    user_events::append(&*tx, &[event])
        .await
        .map_err(|e| AdminError::Database(e.into()))?;
    tx.commit().await?;
    Ok(AdminOutcome::Created(id))
}

/// The password from `--password-file` (first line), else from the terminal without
/// echo, else (stdin not a terminal) the first line of stdin.
pub fn read_password(file: Option<&std::path::Path>) -> Result<SecretString, String> {
    use std::io::{BufRead, IsTerminal};
    let line = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("--password-file {}: {e}", path.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        None if std::io::stdin().is_terminal() => {
            let first = rpassword::prompt_password("Password for the new admin: ")
                .map_err(|e| e.to_string())?;
            let again = rpassword::prompt_password("Repeat it: ").map_err(|e| e.to_string())?;
            if first != again {
                return Err("the passwords differ".to_owned());
            }
            first
        }
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    Ok(SecretString::from(line))
}
