//! What travels over Kafka: the registration event (Avro single-object encoding), the
//! sealed password inside it, the account and client events, the records' signatures, and the client settings and
//! header names both binaries use.

pub mod client;
pub mod kafka;
pub mod registration;
pub mod seal;
pub mod signature;
pub mod single_object;
pub mod user;
