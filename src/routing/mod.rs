//! The routing decision: a pure function of the compiled table and the call's facts.
//!
//! `RoutingTable::compile` (in `compile.rs`) turns a validated `Config` into lookup
//! structures; the methods below then answer without I/O, clock or allocation:
//!
//! - `ingress(src)`: the trunk whose most specific peer entry covers the source address
//!   (`peer.rs`): exact ip:port, then exact ip, then the longest network.
//! - `normalize`: the ingress trunk's inbound rules on the called and calling numbers
//!   (`rule.rs`: anchored regex, `${1}` replacement; the first matching rule applies).
//! - `route_with(ingress, called, rotation, usable)`: the usage walk (`walk.rs`). For each
//!   usage of the ingress trunk, in order, the routes carrying that usage whose pattern
//!   matches the whole called number (`pattern.rs`) or that list a prefix of it
//!   (`prefix.rs`), ordered by priority (lower first), then by the length of the matching
//!   prefix (longest first; a pattern route counts as length 0, like the catch-all prefix
//!   ""), then by file order. A trunk without usages walks every route once, in that order;
//!   a route without usages is walked only by such trunks. Each route offers its trunks
//!   rotated by `rotation` (round robin, weighted by `weights`); the attempt list skips the
//!   ingress trunk (no hairpin), trunks `usable` refuses (down, full), and repeats, up to
//!   `ATTEMPTS_MAX`. A reject route (`action = "reject"`) ends the walk where it stands: with
//!   no attempt before it the call is refused with its code (`Decision::Reject`), so a
//!   `+1900` reject route of higher priority carves that range out of a `+1` route.
//! - `translate`: the egress trunk's outbound rules, then `remove_plus`;
//!   `translate_response`: its response-code rules.

mod compile;
pub mod pattern;
pub mod peer;
pub mod prefix;
pub mod rule;
pub mod schedule;
pub mod walk;

use std::net::SocketAddr;
use std::time::Duration;

use rule::Rule;

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
    /// RFC 7339 toward this trunk: junction's Via in requests to it offers overload control
    /// (`;oc`), and the share of new calls it asks to have withheld goes to the route's next
    /// trunk (or, with none left, is answered 503).
    pub overload_control: bool,
    /// "Fast failover": an INVITE sent to this trunk with no 18x/2xx within this long moves
    /// to the next attempt. `Duration::ZERO`: no progress timer (only Timer C and final
    /// responses end the attempt).
    pub progress_timeout: Duration,
    /// Admission limits: concurrent calls, new calls per second, early dialogs.
    pub max_calls: Option<u32>,
    pub max_cps: Option<u32>,
    pub max_early: Option<u32>,
    /// Ingress admission: limits on the calls this trunk sends junction (concurrent, per
    /// second), and the status of a call refused for them.
    pub max_calls_in: Option<u32>,
    pub max_cps_in: Option<u32>,
    pub refuse_in_code: u16,
    /// Passive health: down after this many INVITE attempts in a row failed without any
    /// answer (`None`: off).
    pub down_after_failures: Option<u32>,
    /// The longest an answered call from or to this trunk may last.
    pub max_duration: Option<Duration>,
    /// OPTIONS health probing of this trunk (`None`: not probed, always considered up).
    pub probe: Option<Probe>,
    /// Inside the trust domain (RFC 3325): the calling number of its calls comes from
    /// their P-Asserted-Identity, and calls to it keep theirs.
    pub trusted: bool,
    /// RFC 8224 Identity of requests sent to it: `Pass` keeps it unless junction changed
    /// the calling number (the signature would fail); `Remove` always removes it.
    pub identity: HeaderPolicy,
    /// Diversion (RFC 5806) and History-Info (RFC 7044) of requests sent to it.
    pub diversion: HeaderPolicy,
    pub history_info: HeaderPolicy,
    /// Calls from it route on the Request-URI's `rn` when present.
    pub route_on_rn: bool,
    /// Usage ids walked for calls from this trunk, in order; `None`: every route.
    usages: Option<Vec<u16>>,
    /// Inbound rules, each with whether it applies to the called / calling number.
    inbound: Vec<(Rule, bool, bool)>,
    outbound_called: Vec<Rule>,
    outbound_calling: Vec<Rule>,
    response_codes: Vec<ResponseRule>,
}

impl Trunk {
    /// The usage ids walked for calls from this trunk (`None`: every route); names via
    /// `RoutingTable::usage_name`.
    pub fn usages(&self) -> Option<&[u16]> {
        self.usages.as_deref()
    }
}

/// A response-code rule as compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ResponseRule {
    code: u16,
    cause: Option<u16>,
    to: u16,
}

/// OPTIONS probing of a trunk: one probe every `interval`; down after `down_after`
/// consecutive failures (timeout or 5xx... see control), up after `up_after` successes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub interval: Duration,
    pub down_after: u32,
    pub up_after: u32,
}

/// A called number as the Request-URI's user part carries it: the number (up to the
/// first `;`) and its parameters from that `;` on (`;npdi;rn=+13105550000`).
pub fn split_called(user: &[u8]) -> (&[u8], &[u8]) {
    match user.iter().position(|&c| c == b';') {
        Some(i) => (user.get(..i).unwrap_or(user), user.get(i..).unwrap_or(&[])),
        None => (user, &[]),
    }
}

/// The value of parameter `name` (case-insensitive) in a `;a=b;c` list, e.g. the routing
/// number `rn` of RFC 4694; `Some(b"")` for a parameter without a value.
pub fn number_param<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    params.split(|&c| c == b';').find_map(|p| {
        let (n, v) = match p.iter().position(|&c| c == b'=') {
            Some(i) => (p.get(..i)?, p.get(i + 1..)?),
            None => (p, &[][..]),
        };
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// What happens to a header of requests sent to a trunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeaderPolicy {
    #[default]
    Pass,
    Remove,
}

/// What happens to requests from addresses that match no trunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnknownSource {
    /// Answer 403 Forbidden.
    Reject,
    /// No answer at all (scanners learn nothing). The default (issue 6: an edge router
    /// tells an unknown address nothing, not even that something listens).
    #[default]
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

/// The ordered egress trunks for one call, each with the route that offered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempts {
    ids: [TrunkId; ATTEMPTS_MAX],
    routes: [u16; ATTEMPTS_MAX],
    len: u8,
}

/// The route of an attempt pushed without one.
pub const NO_ROUTE: u16 = u16::MAX;

impl Attempts {
    pub const EMPTY: Attempts = Attempts {
        ids: [TrunkId(0); ATTEMPTS_MAX],
        routes: [NO_ROUTE; ATTEMPTS_MAX],
        len: 0,
    };
    /// Append; returns false (and drops the id) when full or already present.
    pub fn push(&mut self, id: TrunkId) -> bool {
        self.push_from(id, NO_ROUTE)
    }
    /// Append a trunk offered by `route`; false (nothing changes) when full or already
    /// present.
    pub fn push_from(&mut self, id: TrunkId, route: u16) -> bool {
        if self.as_slice().contains(&id) {
            return false;
        }
        let at = self.len as usize;
        match (self.ids.get_mut(at), self.routes.get_mut(at)) {
            (Some(slot), Some(r)) => {
                *slot = id;
                *r = route;
                self.len += 1;
                true
            }
            _ => false,
        }
    }
    /// The route that offered attempt `i` (for its `caller_id`).
    pub fn route(&self, i: usize) -> Option<u16> {
        if i < self.len() {
            self.routes.get(i).copied()
        } else {
            None
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
    /// Try these trunks in order. `route` offered the first attempt (`attempts.route(i)`
    /// says which route offered each).
    Route { route: u16, attempts: Attempts },
    /// No route matches the called number: 404.
    NoRoute,
    /// Routes matched but no usable trunk remained (all were the ingress trunk, had no
    /// `send_to`, or were refused by `usable`): 503.
    NoTrunk,
    /// The walk reached a reject route (`action = "reject"`) before any attempt: answer
    /// with its code (`RoutingTable::route_reject`).
    Reject { route: u16 },
}

/// What a reject route answers (`action = "reject"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// A final status, 400-699.
    pub code: u16,
    /// The response's reason phrase (`None`: the standard one for `code`).
    pub reason: Option<Box<str>>,
}

/// One route as compiled.
#[derive(Debug)]
struct Route {
    /// Shared with the call records of the attempts it offers (no copy per call).
    name: std::sync::Arc<str>,
    priority: u32,
    /// Egress trunks that have a `send_to`, in the configured order, without repeats.
    trunks: Vec<TrunkId>,
    /// Their round-robin weights (same length), or empty: all equal.
    weights: Vec<u32>,
    /// Sum of `weights` (0 when there are none).
    weight_total: u64,
    /// Usage ids it carries.
    usages: Vec<u16>,
    caller_id: Option<Vec<u8>>,
    /// Matched against the call's `rn` (when it has one) instead of the called number.
    route_on_rn: bool,
    /// `action = "reject"`: the walk stops here and, with no attempt yet, the call gets this.
    reject: Option<Reject>,
    /// The longest an answered call taking this route may last.
    max_duration: Option<Duration>,
    /// Time-of-day windows (`when`, `time_zone`): outside them the route is skipped.
    schedule: Option<Box<schedule::Schedule>>,
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

/// The compiled routing table (built off the shard cores, shared read-only by all shards).
#[derive(Debug)]
pub struct RoutingTable {
    pub trunks: Vec<Trunk>,
    peers: peer::PeerIndex,
    /// In file order; `Decision::Route::route` indexes this.
    routes: Vec<Route>,
    prefixes: prefix::PrefixTrie,
    patterns: Patterns,
    /// Usage names, by id.
    usage_names: Vec<String>,
    /// Some route has `route_on = "rn"`.
    routes_on_rn: bool,
    input_limits: crate::limits::InputLimits,
    unknown_source: UnknownSource,
    overload_feedback: bool,
    retry_after_s: u32,
    failover_after_provisional: bool,
    flood: crate::sip::flood::FloodSettings,
}

impl RoutingTable {
    /// Input limits (`[limits]`).
    pub fn input_limits(&self) -> &crate::limits::InputLimits {
        &self.input_limits
    }

    /// Flood protection settings (`[flood]`).
    pub fn flood(&self) -> crate::sip::flood::FloodSettings {
        self.flood
    }

    /// Which trunk a source address belongs to (most specific peer entry wins).
    pub fn ingress(&self, src: SocketAddr) -> Option<TrunkId> {
        self.peers.lookup(src)
    }

    /// `ingress`, with the peer entry that matched (for explanations).
    pub fn ingress_entry(&self, src: SocketAddr) -> Option<(peer::PeerAddr, TrunkId)> {
        self.peers.lookup_entry(src)
    }

    /// Route a called number (already extracted from the Request-URI user part / tel number,
    /// and normalized) arriving on `ingress`, every trunk usable, no rotation: each route's
    /// trunks in their configured order. See `route_with`.
    pub fn route(&self, ingress: TrunkId, called: &[u8]) -> Decision {
        self.route_with(ingress, called, 0, &|_| true)
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
        self.routes.get(route as usize).map(|r| &*r.name)
    }

    /// The name of route `route`, shared (a call record keeps it without copying it).
    pub fn route_name_shared(&self, route: u16) -> Option<std::sync::Arc<str>> {
        self.routes.get(route as usize).map(|r| r.name.clone())
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
    /// The IPv4 trunk sources: exact addresses and (network, mask) pairs.
    pub fn peer_sources(&self) -> peer::Sources {
        self.peers.sources()
    }

    pub fn peers_len(&self) -> usize {
        self.peers.len()
    }

    /// Heap bytes of the prefix table.
    pub fn prefix_heap_bytes(&self) -> usize {
        self.prefixes.heap_bytes()
    }

    /// The name of usage `id`.
    pub fn usage_name(&self, id: u16) -> Option<&str> {
        self.usage_names.get(id as usize).map(String::as_str)
    }
}

/// The issue-3 interface the proxy core calls. Pure: no I/O, no clock, and no allocation
/// beyond what the caller's `out` buffer needs.
impl RoutingTable {
    /// Inbound normalization of `number` (called or calling) with the ingress trunk's rules:
    /// the first rule for that number whose pattern matches the whole number applies; else
    /// the number is unchanged. The result is written to `out` (cleared first). Returns the
    /// index of the rule applied in the trunk's `inbound` list.
    pub fn normalize(
        &self,
        trunk: TrunkId,
        which: Number,
        number: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        out.clear();
        if let Some(t) = self.trunk(trunk) {
            for (i, (rule, called, calling)) in t.inbound.iter().enumerate() {
                let applies = match which {
                    Number::Called => *called,
                    Number::Calling => *calling,
                };
                if applies && rule.apply(number, out) {
                    return Some(i);
                }
            }
        }
        out.extend_from_slice(number);
        None
    }

    /// Outbound translation of `number` for egress `trunk`: the first of its
    /// outbound_called or outbound_calling rules that matches the whole number, then
    /// `remove_plus` (a leading `+` is dropped). Written to `out` (cleared first). Returns
    /// the index of the rule applied.
    pub fn translate(
        &self,
        trunk: TrunkId,
        which: Number,
        number: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        let applied = self.translate_rules(trunk, which, number, out);
        if self.trunk(trunk).is_some_and(|t| t.remove_plus) && out.first() == Some(&b'+') {
            out.remove(0);
        }
        applied
    }

    /// `translate` without `remove_plus`: the outbound rules only (for explanations).
    pub fn translate_rules(
        &self,
        trunk: TrunkId,
        which: Number,
        number: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        out.clear();
        let rules: &[Rule] = match (self.trunk(trunk), which) {
            (Some(t), Number::Called) => &t.outbound_called,
            (Some(t), Number::Calling) => &t.outbound_calling,
            (None, _) => &[],
        };
        let applied = rules.iter().position(|rule| rule.apply(number, out));
        if applied.is_none() {
            out.extend_from_slice(number);
        }
        applied
    }

    /// A final response code from egress `trunk` after its response_codes rules: the first
    /// rule whose code matches and whose cause, if it names one, equals `cause` (the Q.850
    /// cause from the Reason header) gives the code to act on; else `code` unchanged.
    pub fn translate_response(&self, trunk: TrunkId, code: u16, cause: Option<u16>) -> u16 {
        self.trunk(trunk)
            .and_then(|t| {
                t.response_codes
                    .iter()
                    .find(|r| r.code == code && r.cause.is_none_or(|c| Some(c) == cause))
            })
            .map_or(code, |r| r.to)
    }

    /// The attempt list for a call from `ingress` to the (normalized) `called` number: the
    /// usage walk (module documentation), each route's trunks rotated by `rotation` (the
    /// caller passes a counter that changes per call: round robin, weighted by the route's
    /// `weights`), skipping trunks for which `usable` is false (down, or over a limit).
    /// `NoRoute`: no route of the trunk's usages matches (404). `NoTrunk`: routes matched but
    /// every trunk was the ingress or unusable (503).
    pub fn route_with(
        &self,
        ingress: TrunkId,
        called: &[u8],
        rotation: u64,
        usable: &dyn Fn(TrunkId) -> bool,
    ) -> Decision {
        self.walk(ingress, called, rotation, usable, &mut walk::Quiet)
    }

    /// The walk for one call, as the proxy routes it: on the called number, or on the
    /// routing number `rn` when the ingress trunk has `route_on = "rn"` and the call has
    /// one; routes with `route_on = "rn"` match `rn` either way (`walk_rn`). At wall-clock
    /// time `at` (seconds since the Unix epoch; `None`: time-of-day windows not looked at),
    /// reject routes and operator-disabled trunks (through `usable`) included (`walk_rn_at`).
    #[allow(clippy::too_many_arguments)]
    pub fn walk_call(
        &self,
        ingress: TrunkId,
        called: &[u8],
        rn: Option<&[u8]>,
        rotation: u64,
        usable: &dyn Fn(TrunkId) -> bool,
        at: Option<i64>,
        observer: &mut impl walk::Observer,
    ) -> Decision {
        let on_rn = self.trunk(ingress).is_some_and(|t| t.route_on_rn);
        let number = match rn {
            Some(r) if on_rn => r,
            _ => called,
        };
        self.walk_rn_at(ingress, number, rn, rotation, usable, at, observer)
    }

    /// Whether `route` matches the call's `rn` instead of its called number.
    pub fn route_on_rn(&self, route: u16) -> bool {
        self.routes
            .get(route as usize)
            .is_some_and(|r| r.route_on_rn)
    }

    /// The calling number set by `route` (`caller_id`), if any: it replaces the calling
    /// number of calls that route offered, before the egress trunk's outbound_calling rules.
    pub fn route_caller_id(&self, route: u16) -> Option<&[u8]> {
        self.routes
            .get(route as usize)
            .and_then(|r| r.caller_id.as_deref())
    }

    /// The time-of-day windows of route `route`, if it has any.
    pub fn route_schedule(&self, route: u16) -> Option<&schedule::Schedule> {
        self.routes
            .get(route as usize)
            .and_then(|r| r.schedule.as_deref())
    }

    /// `route_with` at a wall-clock time (`unix_secs`, seconds since the Unix epoch): routes
    /// with `when` windows are walked only while one is open. (`route_with` and `route`
    /// ignore the windows: every route is walked.)
    pub fn route_at(
        &self,
        ingress: TrunkId,
        called: &[u8],
        rotation: u64,
        usable: &dyn Fn(TrunkId) -> bool,
        unix_secs: i64,
    ) -> Decision {
        self.walk_at(
            ingress,
            called,
            rotation,
            usable,
            Some(unix_secs),
            &mut walk::Quiet,
        )
    }

    /// The maximum duration of calls taking route `route` (`max_duration_s`).
    pub fn route_max_duration(&self, route: u16) -> Option<Duration> {
        self.routes.get(route as usize).and_then(|r| r.max_duration)
    }

    /// What reject route `route` answers (`None`: it is an ordinary route).
    pub fn route_reject(&self, route: u16) -> Option<&Reject> {
        self.routes
            .get(route as usize)
            .and_then(|r| r.reject.as_ref())
    }

    /// What to do with requests from unknown sources (`[server] unknown_source`).
    pub fn unknown_source(&self) -> UnknownSource {
        self.unknown_source
    }

    /// Whether trunks that support RFC 7339 hear how many new calls to withhold while a shard
    /// sheds (`[server] overload_feedback`).
    pub fn overload_feedback(&self) -> bool {
        self.overload_feedback
    }

    /// Retry-After (seconds) of junction's 503s for temporary conditions, 0 for none
    /// (`[server] retry_after_s`).
    pub fn retry_after_s(&self) -> u32 {
        self.retry_after_s
    }

    /// Whether an INVITE may still fail over to the next trunk after an 18x from the
    /// current one was relayed upstream (`[routing] failover_after_provisional`, default
    /// false).
    pub fn failover_after_provisional(&self) -> bool {
        self.failover_after_provisional
    }
}
