//! `ClientEvent`: what other services learn about OpenID Connect clients, from the
//! `oidc-client-events` topic (`CLIENT_EVENTS_TOPIC`). Written to the same outbox as the
//! account events, in the transaction of the change, and published by the same relay,
//! keyed by the client id. Schema `schemas/client_event.avsc`.

use std::sync::LazyLock;

use apache_avro::types::Value;
use uuid::Uuid;

use super::single_object::{optional, strings, Codec, CodecError};

pub const CURRENT_SCHEMA: &str = include_str!("../../../schemas/client_event.avsc");
/// Every schema an earlier build may have written; kept forever.
pub const HISTORIC_SCHEMAS: &[&str] = &[];

static CODEC: LazyLock<Codec> = LazyLock::new(|| Codec::new(CURRENT_SCHEMA, HISTORIC_SCHEMAS));

/// The kinds of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientEventType {
    Created,
    Updated,
    SecretRotated,
    Deleted,
}

impl ClientEventType {
    pub const ALL: [ClientEventType; 4] = [
        ClientEventType::Created,
        ClientEventType::Updated,
        ClientEventType::SecretRotated,
        ClientEventType::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientEventType::Created => "client.created",
            ClientEventType::Updated => "client.updated",
            ClientEventType::SecretRotated => "client.secret_rotated",
            ClientEventType::Deleted => "client.deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A client's public settings as an event carries them (never its secret).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSettings {
    pub name: Option<String>,
    pub confidential: bool,
    pub first_party: bool,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub grant_types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEvent {
    pub event_id: Uuid,
    pub event_type: ClientEventType,
    pub occurred_at_ms: i64,
    pub client_id: String,
    pub actor_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub version: i64,
    pub settings: ClientSettings,
}

impl ClientEvent {
    /// An event of `event_type` for the client at `version`, now, with a new id.
    pub fn new(event_type: ClientEventType, client_id: &str, version: i64) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type,
            occurred_at_ms: chrono::Utc::now().timestamp_millis(),
            client_id: client_id.to_owned(),
            actor_id: None,
            request_id: None,
            version,
            settings: ClientSettings::default(),
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let s = &self.settings;
        CODEC.encode(Value::Record(vec![
            ("eventId".into(), Value::String(self.event_id.to_string())),
            (
                "type".into(),
                Value::String(self.event_type.as_str().into()),
            ),
            ("occurredAtMs".into(), Value::Long(self.occurred_at_ms)),
            ("clientId".into(), Value::String(self.client_id.clone())),
            (
                "actorId".into(),
                optional(self.actor_id.map(|a| a.to_string())),
            ),
            ("requestId".into(), optional(self.request_id.clone())),
            ("version".into(), Value::Long(self.version)),
            ("name".into(), optional(s.name.clone())),
            ("confidential".into(), Value::Boolean(s.confidential)),
            ("firstParty".into(), Value::Boolean(s.first_party)),
            ("redirectUris".into(), strings(&s.redirect_uris)),
            ("scopes".into(), strings(&s.scopes)),
            ("grantTypes".into(), strings(&s.grant_types)),
        ]))
    }

    /// Decodes a record written with any known schema version.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut f = CODEC.decode(bytes)?;
        let event_type =
            ClientEventType::parse(&f.string("type")?).ok_or(CodecError::Field("type"))?;
        Ok(Self {
            event_id: f.uuid("eventId")?,
            event_type,
            occurred_at_ms: f.long("occurredAtMs")?,
            client_id: f.string("clientId")?,
            actor_id: f.optional_uuid("actorId")?,
            request_id: f.optional("requestId")?,
            version: f.long("version")?,
            settings: ClientSettings {
                name: f.optional("name")?,
                confidential: f.boolean("confidential")?,
                first_party: f.boolean("firstParty")?,
                redirect_uris: f.strings("redirectUris")?,
                scopes: f.strings("scopes")?,
                grant_types: f.strings("grantTypes")?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_the_round_trip() {
        let mut e = ClientEvent::new(ClientEventType::Created, "cl_abc", 1);
        e.actor_id = Some(Uuid::now_v7());
        e.request_id = Some("req-1".into());
        e.settings = ClientSettings {
            name: Some("Shop".into()),
            confidential: true,
            first_party: false,
            redirect_uris: vec!["https://shop.example/cb".into()],
            scopes: vec!["openid".into(), "email".into()],
            grant_types: vec!["authorization_code".into()],
        };
        let bytes = e.encode().unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        assert_eq!(ClientEvent::decode(&bytes).unwrap(), e);
    }

    #[test]
    fn every_type_is_documented_in_the_schema_and_parses_back() {
        for t in ClientEventType::ALL {
            assert!(CURRENT_SCHEMA.contains(t.as_str()), "{}", t.as_str());
            assert_eq!(ClientEventType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn an_account_event_is_not_read_as_a_client_event() {
        let bytes = crate::events::user::UserEvent::new(
            crate::events::user::UserEventType::Deleted,
            Uuid::nil(),
            1,
        )
        .encode()
        .unwrap();
        assert!(matches!(
            ClientEvent::decode(&bytes),
            Err(CodecError::UnknownSchema(_))
        ));
    }

    #[test]
    fn the_schema_has_no_field_for_a_secret() {
        assert!(!CURRENT_SCHEMA.to_lowercase().contains("\"secret"));
    }
}
