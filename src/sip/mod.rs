//! The sans-IO SIP core: bytes in, bytes out, time passed in.

pub mod cdr;
pub mod dialog;
pub mod flood;
pub mod header;
pub mod index;
pub mod method;
pub mod oc;
pub mod overload;
pub mod proxy;
pub mod response;
pub mod rewrite;
pub mod scan;
pub mod slab;
pub mod span;
pub mod timer;
pub mod transaction;
pub mod trunk_stats;
pub mod uri;
pub mod via;

pub use method::Method;
pub use span::Span;
