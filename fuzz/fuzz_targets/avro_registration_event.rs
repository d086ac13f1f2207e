//! A Kafka record's value as the consumer decodes it: any bytes either fail to decode or
//! decode to an event that encodes (with the current schema) and decodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registrar_common::events::registration::RegistrationEvent;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = RegistrationEvent::decode(data) else {
        return;
    };
    let encoded = event
        .encode()
        .expect("a decoded event encodes with the current schema");
    let again = RegistrationEvent::decode(&encoded).expect("an encoded event decodes");
    assert_eq!(again, event);
});
