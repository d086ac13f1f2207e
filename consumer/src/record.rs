//! A record as the consumer read it from the registration topic: what the pipeline
//! processes and what a dead letter keeps.

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
