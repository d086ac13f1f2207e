//! `POST /api/users` bodies: any bytes are refused as JSON, refused by the registration
//! rules, or accepted as a registration whose profile the consumer, validating the
//! event's fields again, accepts unchanged (else an accepted registration would fail
//! later as INVALID_REGISTRATION).
#![no_main]

use libfuzzer_sys::fuzz_target;
use registrar_api::bodies::registration::RegistrationRequest;
use registrar_common::domain::password_policy::PasswordPolicy;
use registrar_common::domain::registration::{Profile, ProfileInput, RequiredFields};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<RegistrationRequest>(data) else {
        return;
    };
    let policy = PasswordPolicy::new(12);
    let Ok(registration) = request.parse(&policy, RequiredFields::NONE) else {
        return;
    };
    let p = &registration.profile;
    let date_of_birth = p.date_of_birth.map(|d| d.to_string());
    let again = Profile::parse(
        ProfileInput {
        email: Some(p.email.as_str()),
        name: None,
        first_name: p.first_name.as_deref(),
        last_name: p.last_name.as_deref(),
        gender: p.gender.map(|g| g.as_str()),
        sex: p.sex.map(|s| s.as_str()),
        occupation: p.occupation.as_deref(),
        username: p.username.as_ref().map(|u| u.as_str()),
        date_of_birth: date_of_birth.as_deref(),
    },
        RequiredFields::NONE,
    )
    .expect("the consumer accepts what the api accepted");
    assert_eq!(&again, p);
    assert!(policy.check("password", &registration.password).is_ok());
});
