//! The api's use cases called directly, without HTTP, against the real services: the
//! rules they own (transactions, preconditions, constraint mapping, idempotency) read
//! more plainly here than through the router.

use common::domain::password_policy::PasswordPolicy;
use common::domain::registration::{ProfileInput, Registration};
use common::domain::Role;
use registrar_api::bodies::users::UserUpdateRequest;
use registrar_api::caller::{Caller, RequestContext};
use registrar_api::service::registration::{submit_registration, Submission};
use registrar_api::service::users::{update_user, Expected, UpdateMode};
use registrar_api::service::{data, ServiceError};
use registrar_tests::{Account, TestApp};
use secrecy::SecretString;
use uuid::Uuid;

fn caller(account: &Account, role: Role) -> Caller {
    Caller {
        id: account.id,
        role,
        session_id: Uuid::now_v7(),
        token_id: Uuid::now_v7(),
    }
}

fn context() -> RequestContext {
    RequestContext {
        ip: None,
        user_agent: Some("service-test".into()),
        request_id: None,
    }
}

fn registration(email: &str, occupation: &str) -> Registration {
    Registration::parse(
        ProfileInput {
            email: Some(email),
            first_name: Some("Ada"),
            last_name: Some("Lovelace"),
            gender: Some("female"),
            sex: Some("female"),
            occupation: Some(occupation),
            ..Default::default()
        },
        Some(SecretString::from("correct horse battery".to_owned())),
        &PasswordPolicy::default(),
        common::domain::registration::RequiredFields::NONE,
    )
    .unwrap()
}

fn email_change(email: &str, current_password: &str) -> UserUpdateRequest {
    serde_json::from_value(serde_json::json!({
        "email": email,
        "currentPassword": current_password,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_submission_with_its_idempotency_key_replays_the_first_answer() {
    let app = TestApp::spawn_without_consumer().await;
    let email = format!("idem-{}@example.com", Uuid::new_v4().simple());
    let submit = |occupation: &str| Submission {
        registration: registration(&email, occupation),
        idempotency_key: Some("retry-1".into()),
        request_id: None,
    };
    let first = submit_registration(&app.state, submit("Engineer"))
        .await
        .unwrap();
    assert!(!first.replayed);
    let again = submit_registration(&app.state, submit("Engineer"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(
        again.answer.data.registration_id,
        first.answer.data.registration_id
    );
    assert_eq!(again.location, first.location);
    let other = submit_registration(&app.state, submit("Pilot")).await;
    assert!(matches!(other, Err(ServiceError::IdempotencyKeyReused)));
    let without_key = Submission {
        idempotency_key: None,
        ..submit("Engineer")
    };
    let pending = submit_registration(&app.state, without_key).await;
    assert!(matches!(pending, Err(ServiceError::RegistrationPending)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_to_another_users_email_looks_accepted_and_a_stale_version_is_refused() {
    let app = TestApp::spawn().await;
    let ada = app.register_and_login().await;
    let bob = app.register_and_login().await;
    let me = caller(&ada, Role::User);
    let taken = update_user(
        &app.state,
        &me,
        &context(),
        ada.id,
        Expected::AnyVersion,
        email_change(&bob.email, &ada.password),
        UpdateMode::Patch,
    )
    .await
    .unwrap();
    // Accepted like any change (a 409 would tell that the address has an account); it
    // stays pending, with no verification link, and the address stays Bob's.
    assert_eq!(taken.pending_email.as_deref(), Some(bob.email.as_str()));
    assert_eq!(taken.email, ada.email);
    let stale = update_user(
        &app.state,
        &me,
        &context(),
        ada.id,
        Expected::OneOf(vec![-1]),
        email_change("ada.new@example.com", &ada.password),
        UpdateMode::Patch,
    )
    .await;
    assert!(matches!(stale, Err(ServiceError::PreconditionFailed)));
    let moved = update_user(
        &app.state,
        &me,
        &context(),
        ada.id,
        Expected::Exists,
        email_change("ada.new@example.com", &ada.password),
        UpdateMode::Patch,
    )
    .await
    .unwrap();
    // One's own new address waits for its verification.
    assert_eq!(moved.pending_email.as_deref(), Some("ada.new@example.com"));
    assert_eq!(moved.email, ada.email);
    let other = caller(&bob, Role::User);
    let forbidden = update_user(
        &app.state,
        &other,
        &context(),
        ada.id,
        Expected::AnyVersion,
        email_change("bob.was.here@example.com", &bob.password),
        UpdateMode::Patch,
    )
    .await;
    assert!(matches!(forbidden, Err(ServiceError::Forbidden)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_item_and_its_audit_row_are_written_together_and_a_second_create_is_refused() {
    let app = TestApp::spawn().await;
    let ada = app.register_and_login().await;
    let me = caller(&ada, Role::User);
    let value = serde_json::json!({ "mode": "dark" });
    let item = data::create_item(
        &app.state,
        &me,
        &context(),
        Some("theme".into()),
        Some(value.clone()),
    )
    .await
    .unwrap();
    assert_eq!(item.value, value);
    let again = data::create_item(
        &app.state,
        &me,
        &context(),
        Some("theme".into()),
        Some(value),
    )
    .await;
    assert!(matches!(again, Err(ServiceError::DataKeyExists)));
    let audited: i64 = app
        .pg()
        .await
        .query_one(
            "SELECT count(*) FROM user_audit_log WHERE user_id = $1 AND action = 'data.created'",
            &[&ada.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1, "one audit row for the one item created");
    let missing = data::get_item(&app.state, &me, "nope").await;
    assert!(matches!(missing, Err(ServiceError::NotFound(_))));
}
