//! `UserEvent`: what other services learn about accounts, from the `user-events` topic.
//! Same wire format as the registration event (Avro single-object encoding: `C3 01`, the
//! CRC-64-AVRO fingerprint of the writer schema, the body); schemas in `schemas/`
//! (`user_event.avsc`) with their history in `schemas/history/`.

use std::sync::LazyLock;

use apache_avro::rabin::Rabin;
use apache_avro::types::Value;
use apache_avro::Schema;
use uuid::Uuid;

pub const CURRENT_SCHEMA: &str = include_str!("../../../schemas/user_event.avsc");
/// Every schema an earlier build may have written; kept forever.
pub const HISTORIC_SCHEMAS: &[&str] = &[];

const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

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
}

impl UserEventType {
    pub const ALL: [UserEventType; 7] = [
        UserEventType::Registered,
        UserEventType::Updated,
        UserEventType::RoleChanged,
        UserEventType::PasswordChanged,
        UserEventType::Deleted,
        UserEventType::Erased,
        UserEventType::EmailVerified,
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

#[derive(Debug, thiserror::Error)]
pub enum UserEventError {
    #[error("not an Avro single-object record")]
    Header,
    #[error("unknown writer schema fingerprint {0:016x}")]
    UnknownSchema(u64),
    #[error("Avro: {0}")]
    Avro(String),
    #[error("field `{0}` is missing or has the wrong type")]
    Field(&'static str),
}

struct Known {
    fingerprint: u64,
    schema: Schema,
}

fn load(text: &str) -> Known {
    let schema = Schema::parse_str(text)
        .unwrap_or_else(|e| panic!("schemas/ holds an invalid Avro schema: {e}"));
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&bytes[..8]);
    Known {
        fingerprint: u64::from_le_bytes(fp),
        schema,
    }
}

// Compiled in and covered by tests: a parse failure is a build defect.
static KNOWN: LazyLock<Vec<Known>> = LazyLock::new(|| {
    let mut known = vec![load(CURRENT_SCHEMA)];
    known.extend(HISTORIC_SCHEMAS.iter().map(|s| load(s)));
    known
});

fn optional(v: Option<String>) -> Value {
    match v {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(s) => Value::Union(1, Box::new(Value::String(s))),
    }
}

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
        let known = &KNOWN[0];
        let value = Value::Record(vec![
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
            (
                "changedFields".into(),
                Value::Array(
                    self.changed_fields
                        .iter()
                        .map(|f| Value::String(f.clone()))
                        .collect(),
                ),
            ),
        ]);
        let body = apache_avro::to_avro_datum(&known.schema, value)
            .map_err(|e| UserEventError::Avro(e.to_string()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&known.fingerprint.to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes a record written with any known schema version.
    pub fn decode(bytes: &[u8]) -> Result<Self, UserEventError> {
        if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
            return Err(UserEventError::Header);
        }
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&bytes[2..HEADER_LEN]);
        let fingerprint = u64::from_le_bytes(fp);
        let writer = KNOWN
            .iter()
            .find(|k| k.fingerprint == fingerprint)
            .ok_or(UserEventError::UnknownSchema(fingerprint))?;
        let mut body = &bytes[HEADER_LEN..];
        let value = apache_avro::from_avro_datum(&writer.schema, &mut body, Some(&KNOWN[0].schema))
            .map_err(|e| UserEventError::Avro(e.to_string()))?;
        let Value::Record(fields) = value else {
            return Err(UserEventError::Field("record"));
        };
        let mut map: std::collections::HashMap<String, Value> = fields.into_iter().collect();
        let mut take = |name: &'static str| map.remove(name).ok_or(UserEventError::Field(name));
        fn string(v: Value, name: &'static str) -> Result<String, UserEventError> {
            match v {
                Value::String(s) => Ok(s),
                _ => Err(UserEventError::Field(name)),
            }
        }
        fn opt(v: Value, name: &'static str) -> Result<Option<String>, UserEventError> {
            match v {
                Value::Union(_, inner) => match *inner {
                    Value::Null => Ok(None),
                    Value::String(s) => Ok(Some(s)),
                    _ => Err(UserEventError::Field(name)),
                },
                Value::Null => Ok(None),
                _ => Err(UserEventError::Field(name)),
            }
        }
        fn long(v: Value, name: &'static str) -> Result<i64, UserEventError> {
            match v {
                Value::Long(n) => Ok(n),
                _ => Err(UserEventError::Field(name)),
            }
        }
        let uuid = |s: String, name: &'static str| {
            Uuid::parse_str(&s).map_err(|_| UserEventError::Field(name))
        };
        let event_type = UserEventType::parse(&string(take("type")?, "type")?)
            .ok_or(UserEventError::Field("type"))?;
        let changed_fields = match take("changedFields")? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| string(v, "changedFields"))
                .collect::<Result<_, _>>()?,
            _ => return Err(UserEventError::Field("changedFields")),
        };
        Ok(Self {
            event_id: uuid(string(take("eventId")?, "eventId")?, "eventId")?,
            event_type,
            occurred_at_ms: long(take("occurredAtMs")?, "occurredAtMs")?,
            user_id: uuid(string(take("userId")?, "userId")?, "userId")?,
            actor_id: opt(take("actorId")?, "actorId")?
                .map(|a| uuid(a, "actorId"))
                .transpose()?,
            request_id: opt(take("requestId")?, "requestId")?,
            version: long(take("version")?, "version")?,
            email: opt(take("email")?, "email")?,
            role: opt(take("role")?, "role")?,
            previous_role: opt(take("previousRole")?, "previousRole")?,
            changed_fields,
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
        assert_eq!(&bytes[..2], &MAGIC);
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
