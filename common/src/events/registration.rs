//! The `UserRegistration` event and its Avro single-object codec.
//!
//! Wire format: `C3 01`, the 8-byte little-endian CRC-64-AVRO (Rabin) fingerprint of the
//! writer schema, then the Avro binary body. The fingerprint tells the reader which of
//! the known schema versions (`schemas/` and `schemas/history/`) wrote the record, and
//! Avro schema resolution maps it onto the current reader schema, so old and new
//! producers and consumers can run side by side during a deploy.

use std::sync::LazyLock;

use apache_avro::rabin::Rabin;
use apache_avro::types::Value;
use apache_avro::{GenericSingleObjectWriter, Schema};
use uuid::Uuid;

use crate::domain::registration::ProfileInput;
use crate::events::seal::SealedPassword;

/// The schema this build writes and reads with.
pub const CURRENT_SCHEMA: &str = include_str!("../../../schemas/user_registration.avsc");
/// Every schema an earlier build may have written; kept forever.
pub const HISTORIC_SCHEMAS: &[&str] = &[
    include_str!("../../../schemas/history/user_registration.v1.avsc"),
    include_str!("../../../schemas/history/user_registration.v2.avsc"),
    include_str!("../../../schemas/history/user_registration.v3.avsc"),
    include_str!("../../../schemas/history/user_registration.v4.avsc"),
    include_str!("../../../schemas/history/user_registration.v5.avsc"),
    include_str!("../../../schemas/history/user_registration.v6.avsc"),
    include_str!("../../../schemas/history/user_registration.v7.avsc"),
    include_str!("../../../schemas/history/user_registration.v8.avsc"),
];

const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Sealed(SealedPassword),
    /// A PHC string for bulk imports of users who already have a hash.
    PasswordHash(String),
    /// No password (v8): an account an identity provider provisions over SCIM; the user
    /// sets one with a reset mail or signs in another way.
    NoPassword,
    /// A passkey instead of a password (v9): the api verified its registration ceremony,
    /// so the consumer has nothing to hash and stores the credential with the user.
    Passkey(PasskeyCredential),
}

/// A WebAuthn credential a sign-up brings (v9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyCredential {
    pub credential_id: Vec<u8>,
    /// The credential as webauthn-rs serialises it (JSON).
    pub credential: String,
    pub name: String,
    pub transports: Vec<String>,
}

/// What an identity provider says about an account it provisions over SCIM (v8).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Provisioning {
    /// SCIM `userName`: unique among live accounts, case-insensitive.
    pub user_name: String,
    pub external_id: Option<String>,
    /// `false`: created deactivated.
    pub active: bool,
    /// A JSON object: the SCIM attributes the account has no column for.
    pub attributes: Option<String>,
}

/// The registration as it travels from api to consumer. Profile fields are raw strings
/// here; the consumer validates them again before persisting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationEvent {
    pub registration_id: Uuid,
    pub email: String,
    /// Optional since v7, like `last_name` and `gender`.
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub gender: Option<String>,
    pub sex: Option<String>,
    pub occupation: Option<String>,
    pub credential: Credential,
    pub submitted_at_ms: i64,
    pub request_id: Option<String>,
    pub username: Option<String>,
    /// `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    /// Imports: the role (`None` = user).
    pub role: Option<String>,
    /// Imports: when the account was created where it comes from (Unix ms).
    pub created_at_ms: Option<i64>,
    /// Imports: the address was verified where it comes from.
    pub email_verified: bool,
    /// Imports: the import and the line this registration came from.
    pub import: Option<ImportLineRef>,
    /// SCIM: the provider's name and id for the account (v8).
    pub provisioning: Option<Provisioning>,
    /// Social login: the upstream identity a first sign-in creates the account for (v9).
    pub identity: Option<UpstreamIdentity>,
}

/// An identity at an upstream OpenID Connect provider (v9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamIdentity {
    /// The configured provider's id.
    pub provider: String,
    /// Its `sub` for the person.
    pub subject: String,
}

/// Where an imported registration came from: the consumer counts the import's persisted
/// users and records its failures by line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLineRef {
    pub import_id: Uuid,
    pub line: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message is shorter than the single-object header")]
    TooShort,
    #[error("message does not start with the Avro single-object marker C3 01")]
    BadMagic,
    #[error("unknown writer schema fingerprint {0:016x}")]
    UnknownSchema(u64),
    #[error("Avro body does not match its writer schema: {0}")]
    Body(String),
    #[error("field `{0}` is missing or has the wrong type")]
    Field(&'static str),
    #[error("registrationId is not a UUID")]
    RegistrationId,
}

#[derive(Debug, thiserror::Error)]
#[error("event does not match the Avro schema: {0}")]
pub struct EncodeError(String);

struct KnownSchema {
    fingerprint: u64,
    schema: Schema,
}

struct Codec {
    current: KnownSchema,
    known: Vec<KnownSchema>,
}

fn load(text: &str) -> KnownSchema {
    let schema = Schema::parse_str(text)
        .unwrap_or_else(|e| panic!("schemas/ holds an invalid Avro schema: {e}"));
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let fingerprint = u64::from_le_bytes(
        bytes
            .as_slice()
            .try_into()
            .unwrap_or_else(|_| panic!("Rabin fingerprint is not 8 bytes")),
    );
    KnownSchema {
        fingerprint,
        schema,
    }
}

// The schemas are compiled into the binary and covered by tests, so a parse failure is a
// build defect, found by the first test run, never a runtime condition.
static CODEC: LazyLock<Codec> = LazyLock::new(|| {
    let current = load(CURRENT_SCHEMA);
    let mut known = vec![load(CURRENT_SCHEMA)];
    known.extend(HISTORIC_SCHEMAS.iter().map(|s| load(s)));
    Codec { current, known }
});

/// The fingerprint of the schema this build writes.
pub fn current_fingerprint() -> u64 {
    CODEC.current.fingerprint
}

impl RegistrationEvent {
    /// Why a record signed with a registration key still may not be trusted: it carries
    /// what only an import (or SCIM provisioning, signed with the same key) may bring. `None` when it carries none of it.
    pub fn import_only_field(&self) -> Option<&'static str> {
        if self.role.as_deref().is_some_and(|r| r != "user") {
            Some("role")
        } else if self.email_verified {
            Some("emailVerified")
        } else if matches!(self.credential, Credential::PasswordHash(_)) {
            Some("passwordHash")
        } else if self.import.is_some() {
            Some("importId")
        } else if self.provisioning.is_some() {
            Some("provisioning")
        } else if self.identity.is_some() {
            Some("identity")
        } else {
            None
        }
    }

    /// The event's profile fields, for the same validation the api applied.
    pub fn profile_input(&self) -> ProfileInput<'_> {
        ProfileInput {
            email: Some(&self.email),
            name: None,
            first_name: self.first_name.as_deref(),
            last_name: self.last_name.as_deref(),
            gender: self.gender.as_deref(),
            sex: self.sex.as_deref(),
            occupation: self.occupation.as_deref(),
            username: self.username.as_deref(),
            date_of_birth: self.date_of_birth.as_deref(),
        }
    }

    fn to_value(&self) -> Value {
        let credential = match &self.credential {
            Credential::Sealed(s) => Value::Union(
                0,
                Box::new(Value::Record(vec![
                    ("keyId".into(), Value::String(s.key_id.clone())),
                    (
                        "encapsulatedKey".into(),
                        Value::Bytes(s.encapsulated_key.clone()),
                    ),
                    ("ciphertext".into(), Value::Bytes(s.ciphertext.clone())),
                    (
                        "nonce".into(),
                        match &s.nonce {
                            None => Value::Union(0, Box::new(Value::Null)),
                            Some(n) => Value::Union(1, Box::new(Value::Bytes(n.clone()))),
                        },
                    ),
                ])),
            ),
            Credential::PasswordHash(phc) => Value::Union(
                1,
                Box::new(Value::Record(vec![(
                    "phc".into(),
                    Value::String(phc.clone()),
                )])),
            ),
            // The last branch, so the branches before keep the positions older
            // schemas gave them.
            Credential::NoPassword => Value::Union(2, Box::new(Value::Null)),
            Credential::Passkey(p) => Value::Union(
                3,
                Box::new(Value::Record(vec![
                    ("credentialId".into(), Value::Bytes(p.credential_id.clone())),
                    ("credential".into(), Value::String(p.credential.clone())),
                    ("name".into(), Value::String(p.name.clone())),
                    ("transports".into(), Value::String(p.transports.join(","))),
                ])),
            ),
        };
        let optional = |v: &Option<String>| match v {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(s) => Value::Union(1, Box::new(Value::String(s.clone()))),
        };
        Value::Record(vec![
            (
                "registrationId".into(),
                Value::String(self.registration_id.to_string()),
            ),
            ("email".into(), Value::String(self.email.clone())),
            ("firstName".into(), optional(&self.first_name)),
            ("lastName".into(), optional(&self.last_name)),
            ("gender".into(), optional(&self.gender)),
            ("sex".into(), optional(&self.sex)),
            ("occupation".into(), optional(&self.occupation)),
            ("credential".into(), credential),
            ("submittedAtMs".into(), Value::Long(self.submitted_at_ms)),
            ("requestId".into(), optional(&self.request_id)),
            ("username".into(), optional(&self.username)),
            ("dateOfBirth".into(), optional(&self.date_of_birth)),
            ("role".into(), optional(&self.role)),
            (
                "createdAtMs".into(),
                match self.created_at_ms {
                    None => Value::Union(0, Box::new(Value::Null)),
                    Some(ms) => Value::Union(1, Box::new(Value::Long(ms))),
                },
            ),
            ("emailVerified".into(), Value::Boolean(self.email_verified)),
            (
                "importId".into(),
                match &self.import {
                    None => Value::Union(0, Box::new(Value::Null)),
                    Some(i) => Value::Union(1, Box::new(Value::String(i.import_id.to_string()))),
                },
            ),
            (
                "importLine".into(),
                match &self.import {
                    None => Value::Union(0, Box::new(Value::Null)),
                    Some(i) => Value::Union(1, Box::new(Value::Long(i.line))),
                },
            ),
            (
                "provisioning".into(),
                match &self.provisioning {
                    None => Value::Union(0, Box::new(Value::Null)),
                    Some(p) => Value::Union(
                        1,
                        Box::new(Value::Record(vec![
                            ("userName".into(), Value::String(p.user_name.clone())),
                            ("externalId".into(), optional(&p.external_id)),
                            ("active".into(), Value::Boolean(p.active)),
                            ("attributes".into(), optional(&p.attributes)),
                        ])),
                    ),
                },
            ),
            (
                "identity".into(),
                match &self.identity {
                    None => Value::Union(0, Box::new(Value::Null)),
                    Some(i) => Value::Union(
                        1,
                        Box::new(Value::Record(vec![
                            ("provider".into(), Value::String(i.provider.clone())),
                            ("subject".into(), Value::String(i.subject.clone())),
                        ])),
                    ),
                },
            ),
        ])
    }

    /// Encodes with the current schema in single-object encoding. Each thread keeps a
    /// writer with the schema resolved once (resolving it per record was about a third of
    /// the encoding's cost).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        thread_local! {
            static WRITER: std::cell::RefCell<Option<GenericSingleObjectWriter>> =
                const { std::cell::RefCell::new(None) };
        }
        let value = self.to_value();
        WRITER.with_borrow_mut(|slot| {
            let writer = match slot {
                Some(writer) => writer,
                None => slot.insert(
                    GenericSingleObjectWriter::new_with_capacity(&CODEC.current.schema, 512)
                        .map_err(|e| EncodeError(e.to_string()))?,
                ),
            };
            let mut out = Vec::with_capacity(256);
            writer
                .write_value_ref(&value, &mut out)
                .map_err(|e| EncodeError(e.to_string()))?;
            Ok(out)
        })
    }

    /// Decodes a single-object encoded record written with any known schema version.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let value = decode_value(bytes, &CODEC.current.schema)?;
        Self::from_value(value)
    }

    fn from_value(value: Value) -> Result<Self, DecodeError> {
        let Value::Record(fields) = value else {
            return Err(DecodeError::Field("record"));
        };
        let mut r = Fields(fields);
        let registration_id = Uuid::parse_str(&r.string("registrationId")?)
            .map_err(|_| DecodeError::RegistrationId)?;
        let credential = match r.take("credential")? {
            Value::Union(_, inner) => match *inner {
                Value::Record(cf) => {
                    let mut c = Fields(cf);
                    if c.has("phc") {
                        Credential::PasswordHash(c.string("phc")?)
                    } else if c.has("credentialId") {
                        Credential::Passkey(PasskeyCredential {
                            credential_id: c.bytes("credentialId")?,
                            credential: c.string("credential")?,
                            name: c.string("name")?,
                            transports: c
                                .string("transports")?
                                .split(',')
                                .filter(|t| !t.is_empty())
                                .map(str::to_owned)
                                .collect(),
                        })
                    } else {
                        Credential::Sealed(SealedPassword {
                            key_id: c.string("keyId")?,
                            encapsulated_key: c.bytes("encapsulatedKey")?,
                            ciphertext: c.bytes("ciphertext")?,
                            nonce: c.optional_bytes("nonce")?,
                        })
                    }
                }
                Value::Null => Credential::NoPassword,
                _ => return Err(DecodeError::Field("credential")),
            },
            _ => return Err(DecodeError::Field("credential")),
        };
        let provisioning = match r.take("provisioning")? {
            Value::Union(_, inner) => match *inner {
                Value::Null => None,
                Value::Record(pf) => {
                    let mut p = Fields(pf);
                    Some(Provisioning {
                        user_name: p.string("userName")?,
                        external_id: p.optional_string("externalId")?,
                        active: p.boolean("active")?,
                        attributes: p.optional_string("attributes")?,
                    })
                }
                _ => return Err(DecodeError::Field("provisioning")),
            },
            _ => return Err(DecodeError::Field("provisioning")),
        };
        let identity = match r.take("identity")? {
            Value::Union(_, inner) => match *inner {
                Value::Null => None,
                Value::Record(f) => {
                    let mut f = Fields(f);
                    Some(UpstreamIdentity {
                        provider: f.string("provider")?,
                        subject: f.string("subject")?,
                    })
                }
                _ => return Err(DecodeError::Field("identity")),
            },
            _ => return Err(DecodeError::Field("identity")),
        };
        let import = match (
            r.optional_string("importId")?,
            r.optional_long("importLine")?,
        ) {
            (Some(id), Some(line)) => Some(ImportLineRef {
                import_id: Uuid::parse_str(&id).map_err(|_| DecodeError::Field("importId"))?,
                line,
            }),
            (None, None) => None,
            _ => return Err(DecodeError::Field("importLine")),
        };
        Ok(Self {
            registration_id,
            email: r.string("email")?,
            first_name: r.optional_string("firstName")?,
            last_name: r.optional_string("lastName")?,
            gender: r.optional_string("gender")?,
            sex: r.optional_string("sex")?,
            occupation: r.optional_string("occupation")?,
            credential,
            submitted_at_ms: r.long("submittedAtMs")?,
            request_id: r.optional_string("requestId")?,
            username: r.optional_string("username")?,
            date_of_birth: r.optional_string("dateOfBirth")?,
            role: r.optional_string("role")?,
            created_at_ms: r.optional_long("createdAtMs")?,
            email_verified: r.boolean("emailVerified")?,
            import,
            provisioning,
            identity,
        })
    }
}

struct Fields(Vec<(String, Value)>);

impl Fields {
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    fn take(&mut self, name: &'static str) -> Result<Value, DecodeError> {
        let pos = self
            .0
            .iter()
            .position(|(n, _)| n == name)
            .ok_or(DecodeError::Field(name))?;
        Ok(self.0.swap_remove(pos).1)
    }

    fn string(&mut self, name: &'static str) -> Result<String, DecodeError> {
        match self.take(name)? {
            Value::String(s) => Ok(s),
            _ => Err(DecodeError::Field(name)),
        }
    }

    /// A `["null", "string"]` field (or a plain string written by an older schema).
    fn optional_string(&mut self, name: &'static str) -> Result<Option<String>, DecodeError> {
        match self.take(name)? {
            Value::Union(_, inner) => match *inner {
                Value::String(s) => Ok(Some(s)),
                Value::Null => Ok(None),
                _ => Err(DecodeError::Field(name)),
            },
            Value::String(s) => Ok(Some(s)),
            Value::Null => Ok(None),
            _ => Err(DecodeError::Field(name)),
        }
    }

    fn bytes(&mut self, name: &'static str) -> Result<Vec<u8>, DecodeError> {
        match self.take(name)? {
            Value::Bytes(b) => Ok(b),
            _ => Err(DecodeError::Field(name)),
        }
    }

    /// A `["null", "bytes"]` field.
    fn optional_bytes(&mut self, name: &'static str) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.take(name)? {
            Value::Union(_, inner) => match *inner {
                Value::Bytes(b) => Ok(Some(b)),
                Value::Null => Ok(None),
                _ => Err(DecodeError::Field(name)),
            },
            Value::Null => Ok(None),
            _ => Err(DecodeError::Field(name)),
        }
    }

    /// A `["null", "long"]` field.
    fn optional_long(&mut self, name: &'static str) -> Result<Option<i64>, DecodeError> {
        match self.take(name)? {
            Value::Union(_, inner) => match *inner {
                Value::Long(v) => Ok(Some(v)),
                Value::Null => Ok(None),
                _ => Err(DecodeError::Field(name)),
            },
            Value::Null => Ok(None),
            _ => Err(DecodeError::Field(name)),
        }
    }

    fn boolean(&mut self, name: &'static str) -> Result<bool, DecodeError> {
        match self.take(name)? {
            Value::Boolean(b) => Ok(b),
            _ => Err(DecodeError::Field(name)),
        }
    }

    fn long(&mut self, name: &'static str) -> Result<i64, DecodeError> {
        match self.take(name)? {
            Value::Long(v) => Ok(v),
            _ => Err(DecodeError::Field(name)),
        }
    }
}

fn encode_value(writer: &KnownSchema, value: Value) -> Result<Vec<u8>, EncodeError> {
    let body = apache_avro::to_avro_datum(&writer.schema, value)
        .map_err(|e| EncodeError(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&writer.fingerprint.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn decode_value(bytes: &[u8], reader: &Schema) -> Result<Value, DecodeError> {
    super::bound_decoding();
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::TooShort);
    }
    if bytes[..2] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&bytes[2..HEADER_LEN]);
    let fingerprint = u64::from_le_bytes(fp);
    let writer = CODEC
        .known
        .iter()
        .find(|k| k.fingerprint == fingerprint)
        .ok_or(DecodeError::UnknownSchema(fingerprint))?;
    let mut body = &bytes[HEADER_LEN..];
    // A record written with the reader's own schema needs no schema resolution.
    let same_schema =
        std::ptr::eq(reader, &CODEC.current.schema) && fingerprint == CODEC.current.fingerprint;
    let reader = (!same_schema).then_some(reader);
    let value = apache_avro::from_avro_datum(&writer.schema, &mut body, reader)
        .map_err(|e| DecodeError::Body(e.to_string()))?;
    if !body.is_empty() {
        return Err(DecodeError::Body(format!("{} trailing bytes", body.len())));
    }
    Ok(value)
}

/// Test support: encodes a value with a historic schema and decodes with a chosen reader
/// schema, to prove compatibility in both directions.
#[doc(hidden)]
pub mod compat {
    use super::*;

    /// Encodes `event` with historic schema `index` (fields it lacks are dropped).
    pub fn encode_with_historic(event: &RegistrationEvent, index: usize) -> Vec<u8> {
        let writer = load(HISTORIC_SCHEMAS[index]);
        let keeps_nonce = HISTORIC_SCHEMAS[index].contains("\"nonce\"");
        let Value::Record(fields) = event.to_value() else {
            unreachable!("to_value builds a record")
        };
        let historic: Vec<(String, bool)> = match &writer.schema {
            Schema::Record(r) => r
                .fields
                .iter()
                .map(|f| (f.name.clone(), matches!(f.schema, Schema::Union(_))))
                .collect(),
            _ => Vec::new(),
        };
        // Fields the historic schema lacks are dropped; a field that was a plain string
        // then (`sex`, `occupation` before v3, the names and gender before v7) is
        // written without its union.
        let value = Value::Record(
            fields
                .into_iter()
                .filter_map(|(n, v)| {
                    let (_, was_union) = historic.iter().find(|(h, _)| *h == n)?;
                    let v = match v {
                        Value::Union(_, inner) if !was_union && n != "credential" => *inner,
                        // Historic credentials before v4 lack the `nonce`.
                        Value::Union(i, inner) if n == "credential" && !keeps_nonce => match *inner
                        {
                            Value::Record(cf) => Value::Union(
                                i,
                                Box::new(Value::Record(
                                    cf.into_iter().filter(|(f, _)| f != "nonce").collect(),
                                )),
                            ),
                            other => Value::Union(i, Box::new(other)),
                        },
                        v => v,
                    };
                    Some((n, v))
                })
                .collect(),
        );
        encode_value(&writer, value).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Decodes `bytes` with historic schema `index` as the reader schema.
    pub fn decode_with_historic_reader(bytes: &[u8], index: usize) -> Result<Value, DecodeError> {
        let reader = load(HISTORIC_SCHEMAS[index]);
        decode_value(bytes, &reader.schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> RegistrationEvent {
        RegistrationEvent {
            registration_id: Uuid::new_v4(),
            email: "jane@example.com".into(),
            first_name: Some("Jane".into()),
            last_name: Some("Doe".into()),
            gender: Some("female".into()),
            sex: Some("female".into()),
            occupation: Some("Pilot".into()),
            credential: Credential::Sealed(SealedPassword {
                key_id: "k1".into(),
                encapsulated_key: vec![1; 32],
                ciphertext: vec![2; 40],
                nonce: None,
            }),
            submitted_at_ms: 1_700_000_000_000,
            request_id: Some("req-1".into()),
            username: Some("jane.d".into()),
            date_of_birth: Some("1990-04-01".into()),
            role: None,
            created_at_ms: None,
            email_verified: false,
            import: None,
            provisioning: None,
            identity: None,
        }
    }

    #[test]
    fn an_event_survives_a_round_trip() {
        let e = event();
        assert_eq!(RegistrationEvent::decode(&e.encode().unwrap()).unwrap(), e);
    }

    fn epoch_sealed(e: &mut RegistrationEvent) {
        if let Credential::Sealed(s) = &mut e.credential {
            s.nonce = Some(vec![3; 24]);
        }
    }

    #[test]
    fn a_per_epoch_sealed_credential_survives_a_round_trip() {
        let mut e = event();
        epoch_sealed(&mut e);
        assert_eq!(RegistrationEvent::decode(&e.encode().unwrap()).unwrap(), e);
    }

    #[test]
    fn a_v3_reader_reads_a_v4_record_without_the_nonce() {
        // Why consumers are upgraded before apis seal per epoch: a v3 consumer sees a
        // per-message credential whose HPKE open fails (dead letter, not a wrong user).
        let mut e = event();
        epoch_sealed(&mut e);
        let bytes = e.encode().unwrap();
        let Value::Record(fields) = compat::decode_with_historic_reader(&bytes, 2).unwrap() else {
            panic!("not a record")
        };
        let (_, credential) = fields.iter().find(|(n, _)| n == "credential").unwrap();
        let Value::Union(0, inner) = credential else {
            panic!("not the sealed branch: {credential:?}")
        };
        let Value::Record(cf) = &**inner else {
            panic!("not a record")
        };
        assert!(cf.iter().all(|(n, _)| n != "nonce"));
    }

    #[test]
    fn a_password_hash_credential_survives_a_round_trip() {
        let mut e = event();
        e.credential = Credential::PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$abc$def".into());
        e.request_id = None;
        assert_eq!(RegistrationEvent::decode(&e.encode().unwrap()).unwrap(), e);
    }

    #[test]
    fn an_imported_line_keeps_its_import_and_line_number() {
        let mut e = event();
        e.credential = Credential::PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$abc$def".into());
        e.import = Some(ImportLineRef {
            import_id: Uuid::new_v4(),
            line: 42,
        });
        assert_eq!(RegistrationEvent::decode(&e.encode().unwrap()).unwrap(), e);
    }

    #[test]
    fn the_encoding_starts_with_the_single_object_header() {
        let bytes = event().encode().unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        assert_eq!(&bytes[2..10], &current_fingerprint().to_le_bytes());
    }

    #[test]
    fn the_cached_writer_encodes_like_the_reference_encoder() {
        // `encode` keeps a resolved writer per thread; the bytes must be the same as
        // resolving the schema for this one record.
        for e in [event(), {
            let mut e = event();
            epoch_sealed(&mut e);
            e.username = None;
            e
        }] {
            let reference = encode_value(&CODEC.current, e.to_value()).unwrap();
            assert_eq!(e.encode().unwrap(), reference);
            assert_eq!(
                e.encode().unwrap(),
                reference,
                "the second use of the writer"
            );
        }
    }

    #[test]
    fn the_fingerprint_is_the_crc64_avro_of_the_canonical_form() {
        // Reference value of the Avro specification's CRC-64-AVRO for the schema "int".
        let schema = Schema::parse_str(r#""int""#).unwrap();
        let fp = schema.fingerprint::<Rabin>().bytes;
        assert_eq!(
            u64::from_le_bytes(fp.try_into().unwrap()),
            0x7275d51a3f395c8f
        );
    }

    #[test]
    fn an_old_reader_schema_reads_a_record_written_with_the_new_schema() {
        let bytes = event().encode().unwrap();
        let Value::Record(fields) = compat::decode_with_historic_reader(&bytes, 0).unwrap() else {
            panic!("not a record")
        };
        assert!(fields
            .iter()
            .any(|(n, v)| n == "email" && *v == Value::String("jane@example.com".into())));
        assert!(!fields.iter().any(|(n, _)| n == "requestId"));
    }

    #[test]
    fn the_current_reader_reads_a_record_written_with_the_old_schema() {
        let e = event();
        let bytes = compat::encode_with_historic(&e, 0);
        let decoded = RegistrationEvent::decode(&bytes).unwrap();
        assert_eq!(decoded.request_id, None, "the new field takes its default");
        assert_eq!(decoded.registration_id, e.registration_id);
    }

    #[test]
    fn every_historic_writer_is_read_by_the_current_schema() {
        let e = event();
        for index in 0..HISTORIC_SCHEMAS.len() {
            let decoded = RegistrationEvent::decode(&compat::encode_with_historic(&e, index))
                .unwrap_or_else(|err| panic!("v{}: {err}", index + 1));
            assert_eq!(decoded.sex.as_deref(), Some("female"), "v{}", index + 1);
            assert_eq!(decoded.occupation.as_deref(), Some("Pilot"));
            let v3_or_later = index >= 2;
            assert_eq!(
                decoded.username.is_some(),
                v3_or_later,
                "v{}: username added in v3, default before",
                index + 1
            );
            let Credential::Sealed(sealed) = &decoded.credential else {
                panic!("v{}: not sealed", index + 1)
            };
            assert_eq!(sealed.nonce, None, "v{}: per-message form", index + 1);
            assert_eq!(decoded.date_of_birth.is_some(), v3_or_later);
            assert_eq!(
                decoded.first_name.as_deref(),
                Some("Jane"),
                "v{}",
                index + 1
            );
            assert_eq!(decoded.gender.as_deref(), Some("female"), "v{}", index + 1);
        }
    }

    #[test]
    fn a_registration_with_only_an_email_round_trips() {
        let mut e = event();
        e.first_name = None;
        e.last_name = None;
        e.gender = None;
        e.sex = None;
        e.occupation = None;
        e.username = None;
        e.date_of_birth = None;
        assert_eq!(RegistrationEvent::decode(&e.encode().unwrap()).unwrap(), e);
    }

    #[test]
    fn a_v6_reader_reads_a_v7_record_that_has_its_names_and_gender() {
        // During a deploy, consumers still on v6 read what new apis write as long as the
        // names and gender are present.
        let bytes = event().encode().unwrap();
        let Value::Record(fields) = compat::decode_with_historic_reader(&bytes, 5).unwrap() else {
            panic!("not a record")
        };
        assert!(fields
            .iter()
            .any(|(n, v)| n == "firstName" && *v == Value::String("Jane".into())));
        assert!(fields
            .iter()
            .any(|(n, v)| n == "gender" && *v == Value::String("female".into())));
    }

    fn provisioned() -> RegistrationEvent {
        let mut e = event();
        e.credential = Credential::NoPassword;
        e.provisioning = Some(Provisioning {
            user_name: "Jane.Doe@corp.example".into(),
            external_id: Some("00u1abcd".into()),
            active: false,
            attributes: Some(r#"{"displayName":"Jane"}"#.into()),
        });
        e
    }

    #[test]
    fn a_provisioned_account_without_a_password_round_trips() {
        let e = provisioned();
        assert_eq!(RegistrationEvent::decode(&e.encode().unwrap()).unwrap(), e);
        let mut bare = provisioned();
        bare.provisioning.as_mut().unwrap().attributes = None;
        bare.provisioning.as_mut().unwrap().external_id = None;
        assert_eq!(
            RegistrationEvent::decode(&bare.encode().unwrap()).unwrap(),
            bare
        );
    }

    #[test]
    fn a_v7_reader_reads_a_v8_record_with_a_password_and_skips_provisioning() {
        let mut e = provisioned();
        e.credential = event().credential;
        let Value::Record(fields) =
            compat::decode_with_historic_reader(&e.encode().unwrap(), 6).unwrap()
        else {
            panic!("not a record")
        };
        assert!(!fields.iter().any(|(n, _)| n == "provisioning"));
        assert!(fields.iter().any(|(n, _)| n == "credential"));
    }

    #[test]
    fn a_v7_reader_refuses_a_v8_record_without_a_password() {
        // Why consumers are upgraded before apis take SCIM: a v7 consumer cannot read
        // an account without a password and dead-letters it (replayed after the upgrade).
        let bytes = provisioned().encode().unwrap();
        assert!(compat::decode_with_historic_reader(&bytes, 6).is_err());
    }

    fn passkey_first() -> RegistrationEvent {
        let mut e = event();
        e.credential = Credential::Passkey(PasskeyCredential {
            credential_id: vec![7; 32],
            credential: r#"{"cred":{"counter":0}}"#.into(),
            name: "Laptop".into(),
            transports: vec!["internal".into(), "hybrid".into()],
        });
        e
    }

    #[test]
    fn a_passkey_first_registration_round_trips() {
        let e = passkey_first();
        assert_eq!(RegistrationEvent::decode(&e.encode().unwrap()).unwrap(), e);
    }

    #[test]
    fn a_first_social_sign_in_round_trips_and_a_v8_reader_skips_its_identity() {
        let mut e = provisioned();
        e.provisioning = None;
        e.email_verified = true;
        e.identity = Some(UpstreamIdentity {
            provider: "gitlab".into(),
            subject: "248289761001".into(),
        });
        assert_eq!(RegistrationEvent::decode(&e.encode().unwrap()).unwrap(), e);
        let Value::Record(fields) =
            compat::decode_with_historic_reader(&e.encode().unwrap(), 7).unwrap()
        else {
            panic!("not a record")
        };
        assert!(!fields.iter().any(|(n, _)| n == "identity"));
    }

    #[test]
    fn a_v8_reader_reads_a_v9_record_with_a_password() {
        let bytes = event().encode().unwrap();
        assert!(compat::decode_with_historic_reader(&bytes, 7).is_ok());
    }

    #[test]
    fn a_v8_reader_refuses_a_v9_record_with_a_passkey() {
        // Why consumers are upgraded before apis offer passkey sign-ups: a v8 consumer
        // cannot read the new credential and dead-letters it (replayed after the upgrade).
        let bytes = passkey_first().encode().unwrap();
        assert!(compat::decode_with_historic_reader(&bytes, 7).is_err());
    }

    #[test]
    fn a_v6_reader_refuses_a_v7_record_without_a_name() {
        // Why consumers are upgraded before apis accept registrations without names: a
        // v6 consumer cannot read such a record and dead-letters it (nothing is lost;
        // it is replayed once the consumers are upgraded).
        let mut e = event();
        e.first_name = None;
        let bytes = e.encode().unwrap();
        assert!(matches!(
            compat::decode_with_historic_reader(&bytes, 5),
            Err(DecodeError::Body(_))
        ));
    }

    #[test]
    fn a_v2_reader_reads_a_v3_record_that_has_sex_and_occupation() {
        // During a deploy, consumers still on v2 read what new apis write.
        let bytes = event().encode().unwrap();
        let Value::Record(fields) = compat::decode_with_historic_reader(&bytes, 1).unwrap() else {
            panic!("not a record")
        };
        assert!(fields
            .iter()
            .any(|(n, v)| n == "sex" && *v == Value::String("female".into())));
        assert!(!fields.iter().any(|(n, _)| n == "username"));
    }

    #[test]
    fn a_registration_without_the_optional_fields_round_trips() {
        let mut e = event();
        e.sex = None;
        e.occupation = None;
        e.username = None;
        e.date_of_birth = None;
        assert_eq!(RegistrationEvent::decode(&e.encode().unwrap()).unwrap(), e);
    }

    #[test]
    fn a_damaged_record_cannot_make_the_decoder_reserve_gigabytes() {
        // Found by fuzzing: with an Avro array in the v9 draft (the passkey's transports),
        // a damaged block count made the decoder reserve 30 GB and abort the process.
        // Transports travel as one string; the record is now refused or round trips.
        let bytes: &[u8] = &[
            195, 1, 31, 68, 48, 111, 196, 38, 159, 231, 72, 48, 0, 84, 0, 0, 0, 32, 1, 0, 0, 4, 48,
            48, 45, 45, 0, 49, 48, 48, 48, 45, 56, 48, 48, 48, 45, 48, 48, 48, 48, 48, 48, 48, 48,
            48, 48, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 6, 0, 0, 0, 254, 255, 254, 254, 3, 9, 17, 255, 0,
            0, 0, 0, 0, 0, 8, 98,
        ];
        if let Ok(event) = RegistrationEvent::decode(bytes) {
            let again = RegistrationEvent::decode(&event.encode().unwrap()).unwrap();
            assert_eq!(again, event);
        }
    }

    #[test]
    fn garbage_is_rejected_without_panicking() {
        assert!(matches!(
            RegistrationEvent::decode(b"hello"),
            Err(DecodeError::TooShort)
        ));
        assert!(matches!(
            RegistrationEvent::decode(b"not avro at all"),
            Err(DecodeError::BadMagic)
        ));
        let mut bytes = event().encode().unwrap();
        bytes[3] ^= 0xFF;
        assert!(matches!(
            RegistrationEvent::decode(&bytes),
            Err(DecodeError::UnknownSchema(_))
        ));
        let mut bytes = event().encode().unwrap();
        bytes.truncate(20);
        assert!(matches!(
            RegistrationEvent::decode(&bytes),
            Err(DecodeError::Body(_))
        ));
    }
}
