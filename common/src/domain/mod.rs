//! Domain types: built by `parse`, so a value of one of them is valid by construction.

pub mod email;
pub mod field_error;
pub mod password;
pub mod password_policy;
pub mod registration;
pub mod role;
pub mod username;
pub mod webhook_target;

pub use email::Email;
pub use role::Role;
pub use username::Username;
