//! junction: a carrier-scale SIP inter-trunk router.
//!
//! Layers (see docs/architecture.md): `sip` is the synchronous sans-IO SIP core (scanning, rewriting,
//! transactions, proxy, call state; it takes `now` as an argument), `routing` the pure routing
//! decision, `shard` the thin glommio shell per core, `control` the control plane off the shard
//! cores (configuration, metrics HTTP). `limits` holds every bound in one place.

pub mod config;
pub mod control;
pub mod limits;
pub mod routing;
pub mod shard;
pub mod sip;
pub mod trunks;
