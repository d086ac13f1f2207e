//! The error of one input field, shared by every rule that checks input (registration,
//! password policy, profile changes).

use serde::Serialize;

/// One problem with one field of the input; serialised into the error envelope's details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
