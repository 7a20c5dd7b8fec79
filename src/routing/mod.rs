//! The routing decision: a pure function of the compiled table and the call's facts.
//!
//! `RoutingTable::compile` (in `compile.rs`) turns a validated `Config` into lookup
//! structures; `ingress` and `route` then answer without I/O, clock or allocation:
//!
//! - `ingress(src)`: the trunk whose most specific peer entry covers the source address
//!   (`peer.rs`): exact ip:port, then exact ip, then the longest network.
//! - `route(ingress, called)`: every route whose pattern matches the whole called number
//!   (`pattern.rs`) or that lists a prefix of it (`prefix.rs`), ordered by priority (lower
//!   first), then by the length of the matching prefix (longest first; a pattern route counts
//!   as length 0, like the catch-all prefix ""), then by file order. Their trunks are
//!   concatenated in that order, skipping the ingress trunk (no hairpin), trunks without
//!   `send_to`, and repeats, up to `ATTEMPTS_MAX`.

mod compile;
pub mod pattern;
pub mod peer;
pub mod prefix;
pub mod rule;

use std::cmp::Reverse;
use std::net::SocketAddr;
use std::time::Duration;

use prefix::PREFIX_BYTES_MAX;

/// Index of a trunk in `RoutingTable::trunks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrunkId(pub u16);

#[derive(Clone, Debug)]
pub struct Trunk {
    pub name: String,
    pub send_to: Option<SocketAddr>,
    /// Strip a leading `+` from numbers sent to this trunk (after outbound translation).
    pub remove_plus: bool,
    /// Send P-Asserted-Identity to this trunk (else it is removed from requests to it).
    pub forward_pai: bool,
    /// "Fast failover": an INVITE sent to this trunk with no 18x/2xx within this long moves
    /// to the next attempt.
    pub progress_timeout: Duration,
    /// Admission limits: concurrent calls, new calls per second, early dialogs.
    pub max_calls: Option<u32>,
    pub max_cps: Option<u32>,
    pub max_early: Option<u32>,
    /// OPTIONS health probing of this trunk (`None`: not probed, always considered up).
    pub probe: Option<Probe>,
}

/// OPTIONS probing of a trunk: one probe every `interval`; down after `down_after`
/// consecutive failures (timeout or 5xx... see control), up after `up_after` successes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub interval: Duration,
    pub down_after: u32,
    pub up_after: u32,
}

/// What happens to requests from addresses that match no trunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownSource {
    /// Answer 403 Forbidden.
    Reject,
    /// No answer at all (scanners learn nothing).
    Drop,
}

/// Which number a translation applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Number {
    Called,
    Calling,
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

/// One route as compiled.
#[derive(Debug)]
struct Route {
    name: String,
    priority: u32,
    /// Egress trunks that have a `send_to`, in the configured order, without repeats.
    trunks: Vec<TrunkId>,
}

/// The pattern routes.
#[derive(Debug)]
struct Patterns {
    /// Every pattern at once: one pass tells whether any pattern route matches at all.
    /// `None` when there are no pattern routes.
    any: Option<regex::bytes::RegexSet>,
    /// Pattern routes in (priority, file order), each with its own anchored regex.
    ordered: Vec<(u16, regex::bytes::Regex)>,
}

impl Patterns {
    /// The next pattern route at or after `*at` (in `ordered`) whose pattern matches; moves
    /// `*at` past it.
    fn next_match(&self, called: &[u8], at: &mut usize) -> Option<u16> {
        while let Some((route, re)) = self.ordered.get(*at) {
            *at += 1;
            if re.is_match(called) {
                return Some(*route);
            }
        }
        None
    }
}

/// The compiled routing table (built off the shard cores, shared read-only by all shards).
#[derive(Debug)]
pub struct RoutingTable {
    pub trunks: Vec<Trunk>,
    peers: peer::PeerIndex,
    /// In file order; `Decision::Route::route` indexes this.
    routes: Vec<Route>,
    prefixes: prefix::PrefixTrie,
    patterns: Patterns,
}

/// Where a candidate route came from while merging: a prefix length's route list, or the
/// pattern routes.
#[derive(Clone, Copy)]
enum Source {
    Prefix(usize),
    Pattern,
}

/// A candidate's place in the attempt order: (priority, longest prefix first, file order).
type CandidateKey = (u32, Reverse<u8>, u16);

/// Prefix lengths one lookup can match (0..=PREFIX_BYTES_MAX).
const PREFIX_SOURCES_MAX: usize = PREFIX_BYTES_MAX + 1;

impl RoutingTable {
    /// Which trunk a source address belongs to (most specific peer entry wins).
    pub fn ingress(&self, src: SocketAddr) -> Option<TrunkId> {
        self.peers.lookup(src)
    }

    /// Route a called number (already extracted from the Request-URI user part / tel number)
    /// arriving on `ingress`. `Decision::Route::route` is the first route in candidate order
    /// (see the module documentation).
    pub fn route(&self, ingress: TrunkId, called: &[u8]) -> Decision {
        // Candidate sources: the routes listing each matching prefix (one list per length,
        // each already in (priority, file order)), and the matching pattern routes (also in
        // that order). Merge them by (priority, longest prefix, file order) without sorting
        // or allocating: each step takes the smallest head.
        let mut lists: [&[u16]; PREFIX_SOURCES_MAX] = [&[]; PREFIX_SOURCES_MAX];
        let mut lens = [0u8; PREFIX_SOURCES_MAX];
        let mut n = 0;
        self.prefixes.walk(called, |len, routes| {
            if let (Some(list), Some(l)) = (lists.get_mut(n), lens.get_mut(n)) {
                *list = routes;
                *l = len as u8;
                n += 1;
            }
        });
        let mut next = [0usize; PREFIX_SOURCES_MAX];
        let mut pattern_at = 0;
        let mut pattern_head = match &self.patterns.any {
            Some(set) if set.is_match(called) => self.patterns.next_match(called, &mut pattern_at),
            _ => None,
        };

        let mut first = None;
        let mut attempts = Attempts::EMPTY;
        loop {
            let mut best: Option<(CandidateKey, Source)> = None;
            let mut offer = |route: u16, len: u8, source: Source| {
                let key = (self.priority(route), Reverse(len), route);
                let better = match best {
                    None => true,
                    Some((k, _)) => key < k,
                };
                if better {
                    best = Some((key, source));
                }
            };
            for (i, ((list, at), len)) in lists.iter().zip(&next).zip(&lens).take(n).enumerate() {
                if let Some(&route) = list.get(*at) {
                    offer(route, *len, Source::Prefix(i));
                }
            }
            if let Some(route) = pattern_head {
                offer(route, 0, Source::Pattern);
            }
            let Some(((_, _, route), source)) = best else {
                break;
            };
            match source {
                Source::Prefix(i) => {
                    if let Some(at) = next.get_mut(i) {
                        *at += 1;
                    }
                }
                Source::Pattern => {
                    pattern_head = self.patterns.next_match(called, &mut pattern_at);
                }
            }
            first.get_or_insert(route);
            if let Some(r) = self.routes.get(route as usize) {
                for &trunk in &r.trunks {
                    if trunk != ingress {
                        attempts.push(trunk);
                    }
                }
            }
            if attempts.len() >= ATTEMPTS_MAX {
                break;
            }
        }
        match first {
            None => Decision::NoRoute,
            Some(_) if attempts.is_empty() => Decision::NoTrunk,
            Some(route) => Decision::Route { route, attempts },
        }
    }

    fn priority(&self, route: u16) -> u32 {
        self.routes
            .get(route as usize)
            .map_or(u32::MAX, |r| r.priority)
    }

    pub fn trunk(&self, id: TrunkId) -> Option<&Trunk> {
        self.trunks.get(id.0 as usize)
    }

    /// The trunk with this name.
    pub fn trunk_id(&self, name: &str) -> Option<TrunkId> {
        self.trunks
            .iter()
            .position(|t| t.name == name)
            .map(|i| TrunkId(i as u16))
    }

    /// The name of route `route` (an index as in `Decision::Route`).
    pub fn route_name(&self, route: u16) -> Option<&str> {
        self.routes.get(route as usize).map(|r| r.name.as_str())
    }

    /// Number of routes.
    pub fn routes_len(&self) -> usize {
        self.routes.len()
    }

    /// Number of (prefix, route) entries in the prefix table.
    pub fn prefixes_len(&self) -> usize {
        self.prefixes.len()
    }

    /// Number of peer entries.
    pub fn peers_len(&self) -> usize {
        self.peers.len()
    }
}

/// The issue-3 interface the proxy core calls. Bodies here are the identity / no-rule
/// behaviour until the configuration grows the rules; `route_with` already honours
/// availability and rotation.
impl RoutingTable {
    /// Inbound normalization of `number` (called or calling) with the ingress trunk's rules:
    /// the first matching rule's replacement, else the number unchanged, written to `out`
    /// (cleared first). Returns the index of the rule applied.
    pub fn normalize(
        &self,
        trunk: TrunkId,
        which: Number,
        number: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        let _ = (trunk, which);
        out.clear();
        out.extend_from_slice(number);
        None
    }

    /// Outbound translation of `number` for egress `trunk` (its outbound_called or
    /// outbound_calling rules, then `remove_plus`), written to `out` (cleared first).
    /// Returns the index of the rule applied.
    pub fn translate(
        &self,
        trunk: TrunkId,
        which: Number,
        number: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        out.clear();
        let _ = which;
        let strip = self.trunk(trunk).is_some_and(|t| t.remove_plus);
        out.extend_from_slice(if strip {
            number.strip_prefix(b"+").unwrap_or(number)
        } else {
            number
        });
        None
    }

    /// A final response code from egress `trunk` after its response_codes rules (a rule
    /// matches the code and, if it names one, the Q.850 cause from the Reason header).
    pub fn translate_response(&self, trunk: TrunkId, code: u16, cause: Option<u16>) -> u16 {
        let _ = (trunk, cause);
        code
    }

    /// `route`, skipping trunks for which `usable` is false (down, or over a limit), and
    /// rotating each route's trunks by `rotation` (round robin across calls).
    /// `NoTrunk` then means every matching trunk was down, full, the ingress, or unusable.
    pub fn route_with(
        &self,
        ingress: TrunkId,
        called: &[u8],
        rotation: u64,
        usable: &dyn Fn(TrunkId) -> bool,
    ) -> Decision {
        let _ = rotation;
        match self.route(ingress, called) {
            Decision::Route { route, attempts } => {
                let mut kept = Attempts::EMPTY;
                for &t in attempts.as_slice() {
                    if usable(t) {
                        kept.push(t);
                    }
                }
                if kept.is_empty() {
                    Decision::NoTrunk
                } else {
                    Decision::Route {
                        route,
                        attempts: kept,
                    }
                }
            }
            other => other,
        }
    }

    /// A calling-number override set on `route`, if any.
    pub fn route_caller_id(&self, route: u16) -> Option<&[u8]> {
        let _ = route;
        None
    }

    /// What to do with requests from unknown sources.
    pub fn unknown_source(&self) -> UnknownSource {
        UnknownSource::Reject
    }

    /// Whether an INVITE may still fail over to the next trunk after an 18x from the
    /// current one was relayed upstream (default false).
    pub fn failover_after_provisional(&self) -> bool {
        false
    }
}
