//! The `cursor` query parameter of the user listing: anything a caller sends is either
//! refused or a position that encodes back to a cursor naming the same position.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registrar_common::store::users::ListCursor;

fuzz_target!(|raw: &str| {
    if let Some(cursor) = ListCursor::decode(raw) {
        assert_eq!(ListCursor::decode(&cursor.encode()), Some(cursor));
    }
});
