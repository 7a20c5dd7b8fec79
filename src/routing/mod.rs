//! The routing decision: a pure function of the compiled table and the call's facts.
//! (The config/routing helper implements this; the types below are the agreed interface.)

pub mod pattern;
pub mod peer;
pub mod prefix;

use std::net::SocketAddr;

/// Index of a trunk in `RoutingTable::trunks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrunkId(pub u16);

#[derive(Clone, Debug)]
pub struct Trunk {
    pub name: String,
    pub send_to: Option<SocketAddr>,
}

/// Most egress trunks one call may try (failover depth).
pub const ATTEMPTS_MAX: usize = 8;

/// The ordered egress trunks for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempts {
    ids: [TrunkId; ATTEMPTS_MAX],
    len: u8,
}

impl Attempts {
    pub const EMPTY: Attempts = Attempts {
        ids: [TrunkId(0); ATTEMPTS_MAX],
        len: 0,
    };
    /// Append; returns false (and drops the id) when full or already present.
    pub fn push(&mut self, id: TrunkId) -> bool {
        if self.as_slice().contains(&id) {
            return false;
        }
        match self.ids.get_mut(self.len as usize) {
            Some(slot) => {
                *slot = id;
                self.len += 1;
                true
            }
            None => false,
        }
    }
    pub fn as_slice(&self) -> &[TrunkId] {
        self.ids.get(..self.len as usize).unwrap_or(&[])
    }
    pub fn first(&self) -> Option<TrunkId> {
        self.as_slice().first().copied()
    }
    pub fn get(&self, i: usize) -> Option<TrunkId> {
        self.as_slice().get(i).copied()
    }
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Try these trunks in order.
    Route { route: u16, attempts: Attempts },
    /// No route matches the called number: 404.
    NoRoute,
    /// Routes matched but no usable trunk remained (all were the ingress trunk, or had no
    /// `send_to`): 503.
    NoTrunk,
}

/// The compiled routing table (built off the shard cores, shared read-only by all shards).
#[derive(Debug)]
pub struct RoutingTable {
    pub trunks: Vec<Trunk>,
}

impl RoutingTable {
    /// Compile a validated configuration.
    pub fn compile(config: &crate::config::Config) -> Result<RoutingTable, Vec<crate::config::ConfigError>> {
        let _ = config;
        unimplemented!("routing helper implements this")
    }

    /// Which trunk a source address belongs to (most specific peer entry wins).
    pub fn ingress(&self, src: SocketAddr) -> Option<TrunkId> {
        let _ = src;
        unimplemented!("routing helper implements this")
    }

    /// Route a called number (already extracted from the Request-URI user part / tel number)
    /// arriving on `ingress`.
    pub fn route(&self, ingress: TrunkId, called: &[u8]) -> Decision {
        let _ = (ingress, called);
        unimplemented!("routing helper implements this")
    }

    pub fn trunk(&self, id: TrunkId) -> Option<&Trunk> {
        self.trunks.get(id.0 as usize)
    }
}
