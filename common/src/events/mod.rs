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

/// The most one Avro decode may allocate for a length it reads (a string, bytes, an
/// array's items). Records are at most a megabyte, so a damaged length is refused
/// instead of reserving gigabytes and aborting the process (found by fuzzing).
pub const MAX_DECODE_ALLOCATION_BYTES: usize = 1024 * 1024;

/// Sets [`MAX_DECODE_ALLOCATION_BYTES`] for apache-avro, once, before a decode.
pub(crate) fn bound_decoding() {
    apache_avro::util::max_allocation_bytes(MAX_DECODE_ALLOCATION_BYTES);
}
