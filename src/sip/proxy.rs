//! The proxy core (RFC 3261 16): a synchronous state machine. Feed it datagrams and timeouts
//! with `now`; drain what it wants sent. It never touches a socket or a clock.
//!
//! Run loop contract (the shard shell):
//! 1. for each received datagram: `handle_datagram(now, from, bytes)`;
//! 2. when `now >= next_deadline()`: `handle_timeout(now)`;
//! 3. send every `transmits()`, then `clear_transmits()`;
//! 4. sleep until a datagram arrives or `next_deadline()`.

use crate::routing::RoutingTable;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// This shard's index (0..shards) and the shard count.
    pub shard: u16,
    pub shards: u16,
    /// The address peers reach us at: in our Via and Record-Route, and how we recognise a
    /// Route or Request-URI that points at us.
    pub advertise: SocketAddr,
}

/// Counters kept by the core (plain integers: one shard writes them).
#[derive(Clone, Debug, Default)]
pub struct CoreStats {
    pub requests_in: u64,
    pub responses_in: u64,
    pub requests_forwarded: u64,
    pub responses_forwarded: u64,
    pub responses_local: u64,
    pub retransmissions_absorbed: u64,
    pub retransmissions_sent: u64,
    pub dropped_malformed: u64,
    pub dropped_stray: u64,
    pub rejected_unknown_source: u64,
    pub rejected_no_route: u64,
    pub rejected_overload: u64,
    /// Gauges.
    pub calls_active: u64,
    pub transactions_active: u64,
    pub timers_active: u64,
}

pub struct Core {
    config: CoreConfig,
    routing: Arc<RoutingTable>,
    stats: CoreStats,
    out: Vec<u8>,
    transmits: Vec<(SocketAddr, std::ops::Range<usize>)>,
}

impl Core {
    pub fn new(config: CoreConfig, routing: Arc<RoutingTable>) -> Core {
        Core {
            config,
            routing,
            stats: CoreStats::default(),
            out: Vec::new(),
            transmits: Vec::new(),
        }
    }

    /// Swap in a new routing table (reload); calls in progress keep their decisions.
    pub fn set_routing(&mut self, routing: Arc<RoutingTable>) {
        self.routing = routing;
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let _ = (now, from, data, &self.config);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// Datagrams to send, in order.
    pub fn transmits(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        self.transmits
            .iter()
            .map(move |(to, r)| (*to, self.out.get(r.clone()).unwrap_or(&[])))
    }

    pub fn clear_transmits(&mut self) {
        self.transmits.clear();
        self.out.clear();
    }

    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }
}
