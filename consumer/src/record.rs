//! A record as the consumer read it from the registration topic: what the pipeline
//! processes and what a dead letter keeps.

use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message;

use common::events::signature::SIGNATURE_HEADER;

/// One Kafka record, detached from the consumer.
#[derive(Debug, Clone)]
pub struct Item {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub request_id: Option<String>,
    /// `traceparent` and `tracestate`, when the producer traced the record.
    pub trace_headers: Vec<(String, String)>,
    /// The producer marked the record as carrying a password hash (nothing to hash).
    pub prehashed: bool,
    /// The `registrar-signature` header, checked before anything else is read.
    pub signature: Option<Vec<u8>>,
}

impl Item {
    pub(crate) fn from_message(m: &BorrowedMessage<'_>) -> Self {
        let text = |h: &rdkafka::message::Header<&[u8]>| {
            h.value
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        };
        let request_id = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == common::events::kafka::REQUEST_ID_HEADER)
                .and_then(|h| text(&h))
        });
        let trace_headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .filter(|h| h.key == "traceparent" || h.key == "tracestate")
                    .filter_map(|h| Some((h.key.to_owned(), text(&h)?)))
                    .collect()
            })
            .unwrap_or_default();
        let prehashed = m.headers().is_some_and(|h| {
            h.iter().any(|h| {
                h.key == common::events::kafka::CREDENTIAL_HEADER
                    && h.value == Some(common::events::kafka::CREDENTIAL_PREHASHED.as_bytes())
            })
        });
        let signature = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == SIGNATURE_HEADER)
                .and_then(|h| h.value.map(<[u8]>::to_vec))
        });
        Self {
            prehashed,
            signature,
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            request_id,
            trace_headers,
        }
    }
}
