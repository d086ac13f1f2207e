//! Avro single-object encoding (`C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint
//! of the writer schema, the body) for the event records that have no hot path of their
//! own: account events and client events. A codec knows the current schema and every
//! historic one, so a record written by any earlier build is read.

use apache_avro::rabin::Rabin;
use apache_avro::types::Value;
use apache_avro::Schema;

const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
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

/// The schemas of one record type: the first is the current one.
pub struct Codec {
    known: Vec<Known>,
}

impl Codec {
    /// Schemas are compiled in and covered by tests: a parse failure is a build defect.
    pub fn new(current: &str, historic: &[&str]) -> Self {
        let mut known = vec![load(current)];
        known.extend(historic.iter().map(|s| load(s)));
        Self { known }
    }

    /// Encodes `value` with the current schema.
    pub fn encode(&self, value: Value) -> Result<Vec<u8>, CodecError> {
        let current = &self.known[0];
        let body = apache_avro::to_avro_datum(&current.schema, value)
            .map_err(|e| CodecError::Avro(e.to_string()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&current.fingerprint.to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes a record written with any known schema, resolved onto the current one;
    /// its fields by name.
    pub fn decode(&self, bytes: &[u8]) -> Result<Fields, CodecError> {
        super::bound_decoding();
        if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
            return Err(CodecError::Header);
        }
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&bytes[2..HEADER_LEN]);
        let fingerprint = u64::from_le_bytes(fp);
        let writer = self
            .known
            .iter()
            .find(|k| k.fingerprint == fingerprint)
            .ok_or(CodecError::UnknownSchema(fingerprint))?;
        let mut body = &bytes[HEADER_LEN..];
        let value =
            apache_avro::from_avro_datum(&writer.schema, &mut body, Some(&self.known[0].schema))
                .map_err(|e| CodecError::Avro(e.to_string()))?;
        match value {
            Value::Record(fields) => Ok(Fields(fields.into_iter().collect())),
            _ => Err(CodecError::Field("record")),
        }
    }
}

/// `["null","string"]` from an option.
pub fn optional(v: Option<String>) -> Value {
    match v {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(s) => Value::Union(1, Box::new(Value::String(s))),
    }
}

/// An array of strings.
pub fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.clone())).collect())
}

/// A decoded record's fields, taken by name.
pub struct Fields(std::collections::HashMap<String, Value>);

impl Fields {
    fn take(&mut self, name: &'static str) -> Result<Value, CodecError> {
        self.0.remove(name).ok_or(CodecError::Field(name))
    }

    pub fn string(&mut self, name: &'static str) -> Result<String, CodecError> {
        match self.take(name)? {
            Value::String(s) => Ok(s),
            _ => Err(CodecError::Field(name)),
        }
    }

    pub fn optional(&mut self, name: &'static str) -> Result<Option<String>, CodecError> {
        match self.take(name)? {
            Value::Union(_, inner) => match *inner {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s)),
                _ => Err(CodecError::Field(name)),
            },
            Value::Null => Ok(None),
            _ => Err(CodecError::Field(name)),
        }
    }

    pub fn long(&mut self, name: &'static str) -> Result<i64, CodecError> {
        match self.take(name)? {
            Value::Long(n) => Ok(n),
            _ => Err(CodecError::Field(name)),
        }
    }

    pub fn boolean(&mut self, name: &'static str) -> Result<bool, CodecError> {
        match self.take(name)? {
            Value::Boolean(b) => Ok(b),
            _ => Err(CodecError::Field(name)),
        }
    }

    pub fn strings(&mut self, name: &'static str) -> Result<Vec<String>, CodecError> {
        match self.take(name)? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(CodecError::Field(name)),
                })
                .collect(),
            _ => Err(CodecError::Field(name)),
        }
    }

    pub fn uuid(&mut self, name: &'static str) -> Result<uuid::Uuid, CodecError> {
        uuid::Uuid::parse_str(&self.string(name)?).map_err(|_| CodecError::Field(name))
    }

    pub fn optional_uuid(&mut self, name: &'static str) -> Result<Option<uuid::Uuid>, CodecError> {
        self.optional(name)?
            .map(|s| uuid::Uuid::parse_str(&s).map_err(|_| CodecError::Field(name)))
            .transpose()
    }
}
