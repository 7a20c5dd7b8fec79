//! Building the attempt list (docs/routing.md step 3): the usage walk, the candidate routes of
//! each usage in order, and each route's trunks in round-robin order.
//!
//! One walk serves both routing (`route_with`, with an observer that does nothing, so it
//! compiles away) and explaining (`route-test`, with an observer that records every step), so
//! what is explained is what is routed.
//!
//! Candidates: the routes listing a prefix of the called number (one list per prefix length,
//! each already in (priority, file order)) and the pattern routes matching it (also in that
//! order) are merged by (priority, longest prefix first, file order) without sorting or
//! allocating: each step takes the smallest head. A pattern route counts as prefix length 0.

use std::cmp::Reverse;

use super::prefix::PREFIX_BYTES_MAX;
use super::{Attempts, Decision, RoutingTable, TrunkId, ATTEMPTS_MAX};

/// Prefix lengths one lookup can match (0..=PREFIX_BYTES_MAX).
const PREFIX_SOURCES_MAX: usize = PREFIX_BYTES_MAX + 1;

/// Routes remembered as walked, to report (and skip) a route met again under a later usage.
/// Past this many the walk still works; repeats then only show as repeated trunks.
const WALKED_MAX: usize = 32;

/// How a candidate route matched the called number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    /// It lists this prefix (its length is the prefix's length).
    Prefix(u8),
    /// Its pattern matches the whole number.
    Pattern,
}

/// What became of one trunk of a candidate route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Appended to the attempt list.
    Added,
    /// The call came from it (no hairpin).
    Ingress,
    /// `usable` said no (down, or over a limit).
    Unusable,
    /// Already in the attempt list.
    Repeat,
    /// The attempt list is full (`ATTEMPTS_MAX`).
    Full,
}

/// Watches a walk, step by step. Every method does nothing by default.
pub trait Observer {
    /// The walk moves to the next usage of the ingress trunk (`None`: the trunk has no
    /// usages and may use every route).
    fn usage(&mut self, _usage: Option<u16>) {}
    /// A route carrying that usage matches. `again`: it was already walked under an earlier
    /// usage (its trunks are not offered twice).
    fn route(&mut self, _route: u16, _how: Match, _again: bool) {}
    /// A trunk of the route just reported, in the order tried, and what became of it.
    fn trunk(&mut self, _route: u16, _trunk: TrunkId, _outcome: Outcome) {}
    /// A route matched but was skipped: its time-of-day windows are closed.
    fn closed(&mut self, _route: u16) {}
}

/// The observer of plain routing.
pub struct Quiet;

impl Observer for Quiet {}

/// Where the merge's next candidate comes from.
#[derive(Clone, Copy)]
enum Source {
    Prefix(usize),
    /// 0: the called number's patterns, 1: the routing number's.
    Pattern(usize),
}

/// A candidate's place: (priority, longest prefix first, file order).
type CandidateKey = (u32, Reverse<u8>, u16);

/// The routes whose prefixes or patterns match one called number (and, for routes with
/// `route_on = "rn"`, the call's routing number).
struct Matches<'a> {
    lists: [&'a [u16]; 2 * PREFIX_SOURCES_MAX],
    lens: [u8; 2 * PREFIX_SOURCES_MAX],
    /// Whether list i came from the routing number (only `route_on = "rn"` routes take
    /// it) or from the called number (only the other routes, when there is an rn).
    from_rn: [bool; 2 * PREFIX_SOURCES_MAX],
    n: usize,
    /// Whether any pattern matches the called number, and the rn, at all (one pass over
    /// the set each).
    any_pattern: bool,
    any_pattern_rn: bool,
    /// The call has a routing number and some route routes on it.
    rn: bool,
}

impl RoutingTable {
    fn matches<'a>(&'a self, called: &[u8], rn: Option<&[u8]>) -> Matches<'a> {
        let rn = rn.filter(|_| self.routes_on_rn);
        let any = |n: &[u8]| {
            self.patterns
                .any
                .as_ref()
                .is_some_and(|set| set.is_match(n))
        };
        let mut m = Matches {
            lists: [&[]; 2 * PREFIX_SOURCES_MAX],
            lens: [0; 2 * PREFIX_SOURCES_MAX],
            from_rn: [false; 2 * PREFIX_SOURCES_MAX],
            n: 0,
            any_pattern: any(called),
            any_pattern_rn: rn.is_some_and(any),
            rn: rn.is_some(),
        };
        let mut add = |len: usize, routes: &'a [u16], from_rn: bool| {
            if let (Some(list), Some(l), Some(f)) = (
                m.lists.get_mut(m.n),
                m.lens.get_mut(m.n),
                m.from_rn.get_mut(m.n),
            ) {
                *list = routes;
                *l = len as u8;
                *f = from_rn;
                m.n += 1;
            }
        };
        self.prefixes
            .walk(called, |len, routes| add(len, routes, false));
        if let Some(rn) = rn {
            self.prefixes.walk(rn, |len, routes| add(len, routes, true));
        }
        m
    }

    /// Whether `route` is matched against the number a list of `from_rn` came from.
    fn takes(&self, m: &Matches<'_>, route: u16, from_rn: bool) -> bool {
        !m.rn
            || self
                .routes
                .get(route as usize)
                .is_some_and(|r| r.route_on_rn == from_rn)
    }

    fn carries(&self, route: u16, usage: Option<u16>) -> bool {
        match usage {
            None => true,
            Some(u) => self
                .routes
                .get(route as usize)
                .is_some_and(|r| r.usages.contains(&u)),
        }
    }

    /// The next pattern route at or after `*at` that carries `usage` and matches; moves
    /// `*at` past it.
    fn next_pattern(
        &self,
        m: &Matches<'_>,
        (number, from_rn): (&[u8], bool),
        usage: Option<u16>,
        at: &mut usize,
    ) -> Option<u16> {
        while let Some((route, re)) = self.patterns.ordered.get(*at) {
            *at += 1;
            if self.carries(*route, usage) && self.takes(m, *route, from_rn) && re.is_match(number)
            {
                return Some(*route);
            }
        }
        None
    }

    /// Walk every candidate route for `usage` in order, calling `each` with it and how it
    /// matched; stop early when `each` returns false.
    fn candidates(
        &self,
        m: &Matches<'_>,
        (called, rn): (&[u8], &[u8]),
        usage: Option<u16>,
        mut each: impl FnMut(u16, Match) -> bool,
    ) {
        let mut next = [0usize; 2 * PREFIX_SOURCES_MAX];
        let mut pattern_at = [0usize; 2];
        let numbers = [(called, false), (rn, true)];
        let mut pattern_head = [None, None];
        for (k, any) in [m.any_pattern, m.any_pattern_rn].into_iter().enumerate() {
            if let (true, Some(head), Some(at), Some(&number)) = (
                any,
                pattern_head.get_mut(k),
                pattern_at.get_mut(k),
                numbers.get(k),
            ) {
                *head = self.next_pattern(m, number, usage, at);
            }
        }
        loop {
            let mut best: Option<(CandidateKey, Source)> = None;
            for (i, (((list, at), len), from_rn)) in m
                .lists
                .iter()
                .zip(next.iter_mut())
                .zip(&m.lens)
                .zip(&m.from_rn)
                .take(m.n)
                .enumerate()
            {
                // Skip the routes of this prefix that do not carry the usage (or are
                // matched against the other number).
                while list
                    .get(*at)
                    .is_some_and(|&r| !self.carries(r, usage) || !self.takes(m, r, *from_rn))
                {
                    *at += 1;
                }
                if let Some(&route) = list.get(*at) {
                    let key = (self.priority(route), Reverse(*len), route);
                    if best.is_none_or(|(k, _)| key < k) {
                        best = Some((key, Source::Prefix(i)));
                    }
                }
            }
            for (k, head) in pattern_head.iter().enumerate() {
                if let Some(route) = *head {
                    let key = (self.priority(route), Reverse(0), route);
                    if best.is_none_or(|(k, _)| key < k) {
                        best = Some((key, Source::Pattern(k)));
                    }
                }
            }
            let Some(((_, Reverse(len), route), source)) = best else {
                return;
            };
            let how = match source {
                Source::Prefix(i) => {
                    if let Some(at) = next.get_mut(i) {
                        *at += 1;
                    }
                    Match::Prefix(len)
                }
                Source::Pattern(k) => {
                    if let (Some(head), Some(at), Some(&number)) = (
                        pattern_head.get_mut(k),
                        pattern_at.get_mut(k),
                        numbers.get(k),
                    ) {
                        *head = self.next_pattern(m, number, usage, at);
                    }
                    Match::Pattern
                }
            };
            if !each(route, how) {
                return;
            }
        }
    }

    /// Which of the route's trunks this call tries first: round robin by `rotation`,
    /// weighted when the route has weights (weights [2, 1]: slots a, a, b, and rotation n
    /// takes slot n mod 3). The others follow in configured order, wrapping around.
    fn rotation_start(&self, route: u16, rotation: u64) -> usize {
        let Some(r) = self.routes.get(route as usize) else {
            return 0;
        };
        let n = r.trunks.len() as u64;
        if n == 0 {
            return 0;
        }
        if r.weight_total == 0 {
            return (rotation % n) as usize;
        }
        let mut slot = rotation % r.weight_total;
        for (i, &w) in r.weights.iter().enumerate() {
            let w = u64::from(w);
            if slot < w {
                return i;
            }
            slot -= w;
        }
        0
    }

    /// The attempt list for a call from `ingress` to `called` (see the module documentation
    /// and docs/routing.md step 3), telling `observer` every step.
    pub fn walk(
        &self,
        ingress: TrunkId,
        called: &[u8],
        rotation: u64,
        usable: &dyn Fn(TrunkId) -> bool,
        observer: &mut impl Observer,
    ) -> Decision {
        self.walk_rn(ingress, called, None, rotation, usable, observer)
    }

    /// `walk` for a call that may carry a number-portability routing number `rn`: routes
    /// with `route_on = "rn"` match it instead of the called number when it is present.
    pub fn walk_rn(
        &self,
        ingress: TrunkId,
        called: &[u8],
        rn: Option<&[u8]>,
        rotation: u64,
        usable: &dyn Fn(TrunkId) -> bool,
        observer: &mut impl Observer,
    ) -> Decision {
        self.walk_rn_at(ingress, called, rn, rotation, usable, None, observer)
    }

    /// `walk` at wall-clock time `at` (seconds since the Unix epoch): a route whose
    /// time-of-day windows are all closed then is skipped as if it did not match. `None`:
    /// windows are not looked at.
    pub fn walk_at(
        &self,
        ingress: TrunkId,
        called: &[u8],
        rotation: u64,
        usable: &dyn Fn(TrunkId) -> bool,
        at: Option<i64>,
        observer: &mut impl Observer,
    ) -> Decision {
        self.walk_rn_at(ingress, called, None, rotation, usable, at, observer)
    }

    /// The walk itself: `walk_rn` at time `at` (`walk_at`). Every other walk, and
    /// `walk_call` (the proxy and route-test), comes here.
    #[allow(clippy::too_many_arguments)]
    pub fn walk_rn_at(
        &self,
        ingress: TrunkId,
        called: &[u8],
        rn: Option<&[u8]>,
        rotation: u64,
        usable: &dyn Fn(TrunkId) -> bool,
        at: Option<i64>,
        observer: &mut impl Observer,
    ) -> Decision {
        let m = self.matches(called, rn);
        let rn = rn.unwrap_or(&[]);
        let mut attempts = Attempts::EMPTY;
        let mut matched = false;
        let mut walked = [0u16; WALKED_MAX];
        let mut walked_len = 0;
        let mut rejected = None;
        let usages: &[u16] = match self.trunk(ingress).and_then(|t| t.usages.as_deref()) {
            Some(u) => u,
            None => &[],
        };
        let all_routes = self.trunk(ingress).is_none_or(|t| t.usages.is_none());
        let steps = if all_routes { 1 } else { usages.len() };
        for step in 0..steps {
            let usage = if all_routes {
                None
            } else {
                usages.get(step).copied()
            };
            observer.usage(usage);
            self.candidates(&m, (called, rn), usage, |route, how| {
                if let (Some(t), Some(s)) = (at, self.route_schedule(route)) {
                    if !s.active(t) {
                        observer.closed(route);
                        return true;
                    }
                }
                matched = true;
                let seen = walked.get(..walked_len).unwrap_or(&[]);
                let again = seen.contains(&route);
                observer.route(route, how, again);
                if again {
                    return true;
                }
                if let Some(slot) = walked.get_mut(walked_len) {
                    *slot = route;
                    walked_len += 1;
                }
                if self.route_reject(route).is_some() {
                    // A reject route ends the walk: the routes after it are not offered.
                    rejected = Some(route);
                    return false;
                }
                let trunks: &[TrunkId] = self
                    .routes
                    .get(route as usize)
                    .map_or(&[], |r| r.trunks.as_slice());
                let start = self.rotation_start(route, rotation);
                for k in 0..trunks.len() {
                    let Some(&trunk) = trunks.get((start + k) % trunks.len()) else {
                        continue;
                    };
                    let outcome = if trunk == ingress {
                        Outcome::Ingress
                    } else if attempts.as_slice().contains(&trunk) {
                        Outcome::Repeat
                    } else if attempts.len() >= ATTEMPTS_MAX {
                        Outcome::Full
                    } else if !usable(trunk) {
                        Outcome::Unusable
                    } else {
                        attempts.push_from(trunk, route);
                        Outcome::Added
                    };
                    observer.trunk(route, trunk, outcome);
                }
                attempts.len() < ATTEMPTS_MAX
            });
            if attempts.len() >= ATTEMPTS_MAX || rejected.is_some() {
                break;
            }
        }
        match (attempts.route(0), rejected) {
            (Some(route), _) => Decision::Route { route, attempts },
            (None, Some(route)) => Decision::Reject { route },
            (None, None) if matched => Decision::NoTrunk,
            (None, None) => Decision::NoRoute,
        }
    }

    fn priority(&self, route: u16) -> u32 {
        self.routes
            .get(route as usize)
            .map_or(u32::MAX, |r| r.priority)
    }
}
