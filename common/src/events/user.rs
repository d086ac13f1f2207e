//! `UserEvent`: what other services learn about accounts, from the `user-events` topic.
//! Same wire format as the registration event (Avro single-object encoding: `C3 01`, the
//! CRC-64-AVRO fingerprint of the writer schema, the body); schemas in `schemas/`
//! (`user_event.avsc`) with their history in `schemas/history/`.

use std::sync::LazyLock;

use apache_avro::types::Value;
use uuid::Uuid;

use super::single_object::{optional, strings, Codec, CodecError};

pub const CURRENT_SCHEMA: &str = include_str!("../../../schemas/user_event.avsc");
/// Every schema an earlier build may have written; kept forever.
pub const HISTORIC_SCHEMAS: &[&str] = &[];

/// The kinds of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserEventType {
    Registered,
    Updated,
    RoleChanged,
    PasswordChanged,
    Deleted,
    Erased,
    EmailVerified,
    /// Deactivated (SCIM `active=false`): no sign-in, every session ended.
    Deactivated,
    /// Active again after a deactivation.
    Reactivated,
}

impl UserEventType {
    pub const ALL: [UserEventType; 9] = [
        UserEventType::Registered,
        UserEventType::Updated,
        UserEventType::RoleChanged,
        UserEventType::PasswordChanged,
        UserEventType::Deleted,
        UserEventType::Erased,
        UserEventType::EmailVerified,
        UserEventType::Deactivated,
        UserEventType::Reactivated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserEventType::Registered => "user.registered",
            UserEventType::Updated => "user.updated",
            UserEventType::RoleChanged => "user.role_changed",
            UserEventType::PasswordChanged => "user.password_changed",
            UserEventType::Deleted => "user.deleted",
            UserEventType::Erased => "user.erased",
            UserEventType::EmailVerified => "user.email_verified",
            UserEventType::Deactivated => "user.deactivated",
            UserEventType::Reactivated => "user.reactivated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEvent {
    pub event_id: Uuid,
    pub event_type: UserEventType,
    pub occurred_at_ms: i64,
    pub user_id: Uuid,
    pub actor_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub version: i64,
    pub email: Option<String>,
    pub role: Option<String>,
    pub previous_role: Option<String>,
    pub changed_fields: Vec<String>,
}

/// What decoding or encoding a user event can fail with.
pub type UserEventError = CodecError;

static CODEC: LazyLock<Codec> = LazyLock::new(|| Codec::new(CURRENT_SCHEMA, HISTORIC_SCHEMAS));

impl UserEvent {
    /// An event of `event_type` for the user at `version`, now, with a new id.
    pub fn new(event_type: UserEventType, user_id: Uuid, version: i64) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type,
            occurred_at_ms: chrono::Utc::now().timestamp_millis(),
            user_id,
            actor_id: None,
            request_id: None,
            version,
            email: None,
            role: None,
            previous_role: None,
            changed_fields: Vec::new(),
        }
    }

    pub fn actor(mut self, actor: Option<Uuid>) -> Self {
        self.actor_id = actor;
        self
    }

    pub fn request(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }

    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    pub fn encode(&self) -> Result<Vec<u8>, UserEventError> {
        CODEC.encode(Value::Record(vec![
            ("eventId".into(), Value::String(self.event_id.to_string())),
            (
                "type".into(),
                Value::String(self.event_type.as_str().into()),
            ),
            ("occurredAtMs".into(), Value::Long(self.occurred_at_ms)),
            ("userId".into(), Value::String(self.user_id.to_string())),
            (
                "actorId".into(),
                optional(self.actor_id.map(|a| a.to_string())),
            ),
            ("requestId".into(), optional(self.request_id.clone())),
            ("version".into(), Value::Long(self.version)),
            ("email".into(), optional(self.email.clone())),
            ("role".into(), optional(self.role.clone())),
            ("previousRole".into(), optional(self.previous_role.clone())),
            ("changedFields".into(), strings(&self.changed_fields)),
        ]))
    }

    /// Decodes a record written with any known schema version.
    pub fn decode(bytes: &[u8]) -> Result<Self, UserEventError> {
        let mut f = CODEC.decode(bytes)?;
        let event_type =
            UserEventType::parse(&f.string("type")?).ok_or(CodecError::Field("type"))?;
        Ok(Self {
            event_id: f.uuid("eventId")?,
            event_type,
            occurred_at_ms: f.long("occurredAtMs")?,
            user_id: f.uuid("userId")?,
            actor_id: f.optional_uuid("actorId")?,
            request_id: f.optional("requestId")?,
            version: f.long("version")?,
            email: f.optional("email")?,
            role: f.optional("role")?,
            previous_role: f.optional("previousRole")?,
            changed_fields: f.strings("changedFields")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_the_round_trip_and_starts_with_the_single_object_header() {
        let mut e = UserEvent::new(UserEventType::RoleChanged, Uuid::now_v7(), 7)
            .actor(Some(Uuid::now_v7()))
            .request(Some("req-1".into()));
        e.role = Some("admin".into());
        e.previous_role = Some("user".into());
        e.changed_fields = vec!["role".into()];
        let bytes = e.encode().unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        assert_eq!(UserEvent::decode(&bytes).unwrap(), e);
    }

    #[test]
    fn every_type_has_its_documented_name_and_parses_back() {
        for t in UserEventType::ALL {
            assert!(t.as_str().starts_with("user."));
            assert_eq!(UserEventType::parse(t.as_str()), Some(t));
            assert!(
                CURRENT_SCHEMA.contains(t.as_str()),
                "{} not in the schema's doc",
                t.as_str()
            );
        }
    }

    #[test]
    fn a_damaged_array_length_is_refused_instead_of_reserving_gigabytes() {
        let e = UserEvent::new(UserEventType::Updated, Uuid::now_v7(), 2);
        let mut bytes = e.encode().unwrap();
        // The record ends with `changedFields`: an empty array is one 0 byte. Claim
        // 500 million items instead (zigzag varint of 500 000 000).
        assert_eq!(bytes.pop(), Some(0));
        let mut n: u64 = 1_000_000_000;
        while n >= 0x80 {
            bytes.push((n as u8) | 0x80);
            n >>= 7;
        }
        bytes.push(n as u8);
        assert!(UserEvent::decode(&bytes).is_err());
    }

    #[test]
    fn foreign_bytes_are_refused() {
        assert!(matches!(
            UserEvent::decode(b"{}"),
            Err(UserEventError::Header)
        ));
        let mut bytes = UserEvent::new(UserEventType::Deleted, Uuid::nil(), 1)
            .encode()
            .unwrap();
        bytes[3] ^= 0xff;
        assert!(matches!(
            UserEvent::decode(&bytes),
            Err(UserEventError::UnknownSchema(_))
        ));
    }
}
