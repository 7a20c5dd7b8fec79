//! SIP text: reading received messages, writing ours, and the addresses in URIs.

pub mod msg;
pub mod uri;
pub mod write;

pub use msg::{Method, Msg, Span};
