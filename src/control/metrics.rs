//! What the shards publish (`ShardSnapshot`) and its rendering in the Prometheus text
//! exposition format 0.0.4.
//!
//! Shards keep plain counters (one writer, no atomics per packet) and copy them into their
//! slot at most every `limits::METRICS_PUBLISH_INTERVAL`; the control plane renders the
//! latest copy of every shard. Counters are `junction_..._total` with a `shard` label;
//! gauges are the core's active calls/transactions/timers and the hand-off queue fill.

use super::exposition::{Exposition, Kind};
use crate::sip::proxy::CoreStats;

/// Where a shard is in its life (for `/ready` and `junction_shard_up`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardState {
    /// Created, not yet serving (connecting its hand-off channels).
    Starting,
    /// Serving its socket.
    Running,
    /// Its loop ended (shutdown, error or panic).
    Stopped,
}

impl ShardState {
    pub fn as_u8(self) -> u8 {
        match self {
            ShardState::Starting => 0,
            ShardState::Running => 1,
            ShardState::Stopped => 2,
        }
    }

    pub fn from_u8(value: u8) -> ShardState {
        match value {
            0 => ShardState::Starting,
            1 => ShardState::Running,
            _ => ShardState::Stopped,
        }
    }
}

/// The shell's own counters of one shard (the core's are in `CoreStats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShellCounters {
    /// Datagrams read from this shard's socket.
    pub datagrams_received: u64,
    /// Datagrams given to this shard's core: received and owned, plus handed in.
    pub datagrams_processed: u64,
    /// Received datagrams without a Call-ID (processed by the receiving shard).
    pub datagrams_without_call_id: u64,
    /// Received datagrams handed to their owning shard.
    pub handed_off: u64,
    /// Datagrams handed in by other shards (and processed here).
    pub handed_in: u64,
    /// Dropped because the owner's hand-off queue was full.
    pub dropped_handoff_full: u64,
    /// Dropped because the owner had stopped.
    pub dropped_handoff_closed: u64,
    /// Dropped because larger than `limits::DATAGRAM_BYTES_MAX` (truncated by the kernel).
    pub dropped_oversize: u64,
    /// Dropped because the kernel gave a source address we cannot represent.
    pub dropped_bad_source: u64,
    /// recvmmsg/readiness errors other than "nothing to read".
    pub receive_errors: u64,
    /// recvmmsg calls that returned at least one datagram.
    pub receive_batches: u64,
    /// Datagrams the kernel accepted for sending.
    pub datagrams_sent: u64,
    /// Datagrams the kernel refused (unreachable, too large, wrong address family).
    pub send_errors: u64,
    /// Datagrams dropped after waiting `limits::SEND_BLOCKED_MAX` for send buffer space.
    pub dropped_send_blocked: u64,
    /// Times the socket send buffer was full (EAGAIN/ENOBUFS).
    pub send_buffer_full: u64,
    /// sendmmsg batches issued.
    pub send_batches: u64,
    /// `Core::handle_timeout` calls.
    pub timeouts: u64,
    /// Times the shard went to sleep with nothing to do.
    pub parks: u64,
    /// Datagrams read from this shard's own port (`[server] shard_ports`): peers sent them
    /// straight to the shard that owns the call.
    pub datagrams_received_shard_port: u64,
    /// Handed-off datagrams by what they were (why they crossed, `HANDOFF_KINDS`):
    /// responses, INVITEs, ACKs, CANCELs, other requests; and, of all of them, those that
    /// came in on some shard's own port (steered to a shard that is not the owner).
    pub handoff_by_kind: [u64; 5],
    pub handoff_from_shard_port: u64,
}

/// What a crossing datagram was, in the order of `ShellCounters::handoff_by_kind`. With
/// per-shard ports only new requests (INVITE, and CANCEL or ACK of a new INVITE's
/// transaction, which arrive where the INVITE did) should cross.
pub const HANDOFF_KINDS: [&str; 5] = ["response", "invite", "ack", "cancel", "other_request"];

/// The index in `HANDOFF_KINDS` of a datagram, from its first bytes.
pub fn handoff_kind(data: &[u8]) -> usize {
    if data.starts_with(b"SIP/") {
        0
    } else if data.starts_with(b"INVITE ") {
        1
    } else if data.starts_with(b"ACK ") {
        2
    } else if data.starts_with(b"CANCEL ") {
        3
    } else {
        4
    }
}

/// Everything one shard publishes.
#[derive(Clone, Debug, Default)]
pub struct ShardSnapshot {
    pub shard: usize,
    pub cpu: usize,
    pub shell: ShellCounters,
    pub core: CoreStats,
    /// Datagrams handed to each shard, indexed by the owner (own index stays 0).
    pub handoff_out_to: Vec<u64>,
    /// Datagrams handed in from each shard, indexed by the sender.
    pub handoff_in_from: Vec<u64>,
    /// Routing tables this shard has switched to (reloads applied).
    pub config_reloads: u64,
    /// The configuration generation the shard routes with (0: the one it started with;
    /// every accepted reload is the next generation).
    pub config_generation: u64,
}

impl ShardSnapshot {
    pub fn new(shard: usize, shards: usize, cpu: usize) -> ShardSnapshot {
        ShardSnapshot {
            shard,
            cpu,
            handoff_out_to: vec![0; shards],
            handoff_in_from: vec![0; shards],
            ..ShardSnapshot::default()
        }
    }

    /// Overwrite with `other` without allocating (the shard's publish path).
    pub fn copy_from(&mut self, other: &ShardSnapshot) {
        self.shard = other.shard;
        self.cpu = other.cpu;
        self.shell.clone_from(&other.shell);
        self.core.clone_from(&other.core);
        self.handoff_out_to.clone_from(&other.handoff_out_to);
        self.handoff_in_from.clone_from(&other.handoff_in_from);
        self.config_reloads = other.config_reloads;
        self.config_generation = other.config_generation;
    }
}

/// One shard as the control plane sees it.
#[derive(Clone, Debug)]
pub struct ShardView {
    pub state: ShardState,
    pub snapshot: ShardSnapshot,
}

/// The one core gauge the core keeps in percent (`CoreStats::admission_percent`), exported as
/// a 0-1 ratio.
const ADMISSION_RATIO: &str = "admission_ratio";

/// The core's counters, one entry per `CoreStats` field, in the order `core_values` returns
/// them. Counters get `junction_core_<name>_total`, gauges `junction_<name>`.
const CORE_METRICS: [(&str, Kind, &str); 30] = [
    (
        "requests_in",
        Kind::Counter,
        "SIP requests given to the proxy core.",
    ),
    (
        "responses_in",
        Kind::Counter,
        "SIP responses given to the proxy core.",
    ),
    (
        "requests_forwarded",
        Kind::Counter,
        "Requests forwarded to a next hop.",
    ),
    (
        "responses_forwarded",
        Kind::Counter,
        "Responses forwarded upstream.",
    ),
    (
        "responses_local",
        Kind::Counter,
        "Responses generated by the proxy itself.",
    ),
    (
        "retransmissions_absorbed",
        Kind::Counter,
        "Retransmitted messages absorbed by a transaction.",
    ),
    (
        "retransmissions_sent",
        Kind::Counter,
        "Retransmissions sent by the proxy's transactions.",
    ),
    (
        "dropped_malformed",
        Kind::Counter,
        "Messages dropped as malformed.",
    ),
    (
        "rejected_input_limits",
        Kind::Counter,
        "Messages over a [limits] input limit (answered 4xx when from a trunk, else dropped).",
    ),
    (
        "dropped_stray",
        Kind::Counter,
        "Responses and ACKs matching no transaction, dropped.",
    ),
    (
        "rejected_unknown_source",
        Kind::Counter,
        "Requests refused because their source is no configured trunk.",
    ),
    (
        "rejected_no_route",
        Kind::Counter,
        "Requests refused because no route matched.",
    ),
    (
        "rejected_overload",
        Kind::Counter,
        "New calls answered 503: the shard was saturated (overload control), the process near its memory cap, or a table full.",
    ),
    (
        "dropped_overload",
        Kind::Counter,
        "New calls dropped unparsed: the shard was too saturated even to answer 503.",
    ),
    (
        "oc_responses",
        Kind::Counter,
        "Responses that told an RFC 7339 trunk (oc in its Via) the share of new calls to withhold.",
    ),
    (
        "oc_admitted",
        Kind::Counter,
        "New calls from RFC 7339 trunks admitted while shedding: the trunk withholds its share itself.",
    ),
    (
        "oc_feedback_applied",
        Kind::Counter,
        "RFC 7339 feedback from trunks junction sends calls to (overload_control), applied: the share of new calls each asked to have withheld.",
    ),
    (
        "oc_feedback_ignored",
        Kind::Counter,
        "RFC 7339 feedback from trunks ignored: stale (a lower oc-seq), malformed, out of range, or for another algorithm.",
    ),
    (
        "rejected_admission",
        Kind::Counter,
        "Call attempts a trunk refused: its limits (max_calls, max_cps, max_early), or the share of new calls it asked to have withheld (RFC 7339).",
    ),
    (
        "failovers",
        Kind::Counter,
        "Calls moved to their next trunk after a failure (5xx, 408, timeout).",
    ),
    (
        "probes_sent",
        Kind::Counter,
        "OPTIONS health probes sent to trunks.",
    ),
    (
        "probe_failures",
        Kind::Counter,
        "Health probes that failed (no answer in time, 408 or 5xx).",
    ),
    (
        "records_dropped",
        Kind::Counter,
        "Call records dropped before reaching the CDR writer.",
    ),
    (
        "dropped_flood",
        Kind::Counter,
        "Datagrams dropped unscanned because their source exceeded its [flood] rate.",
    ),
    (
        "flood_blocks",
        Kind::Counter,
        "Times a source address was blocked by flood protection.",
    ),
    (
        "calls_created",
        Kind::Counter,
        "Calls this shard has owned (initial INVITEs that created call state).",
    ),
    ("calls_active", Kind::Gauge, "Calls held by the shard."),
    (
        "transactions_active",
        Kind::Gauge,
        "SIP transactions held by the shard.",
    ),
    (
        "timers_active",
        Kind::Gauge,
        "Protocol timers armed on the shard.",
    ),
    (
        ADMISSION_RATIO,
        Kind::Gauge,
        "Share (0 to 1) of new calls overload control admits (1: not overloaded; 0: memory pressure).",
    ),
];

/// Every `CoreStats` field, in `CORE_METRICS` order. The destructuring lists every field
/// without `..`, so a field added to `CoreStats` fails to compile here until it is exported.
fn core_values(stats: &CoreStats) -> [u64; 30] {
    let CoreStats {
        requests_in,
        responses_in,
        requests_forwarded,
        responses_forwarded,
        responses_local,
        retransmissions_absorbed,
        retransmissions_sent,
        dropped_malformed,
        rejected_input_limits,
        dropped_stray,
        rejected_unknown_source,
        rejected_no_route,
        rejected_overload,
        dropped_overload,
        oc_responses,
        oc_admitted,
        oc_feedback_applied,
        oc_feedback_ignored,
        rejected_admission,
        failovers,
        probes_sent,
        probe_failures,
        records_dropped,
        dropped_flood,
        flood_blocks,
        calls_created,
        calls_active,
        transactions_active,
        timers_active,
        admission_percent,
    } = stats;
    [
        *requests_in,
        *responses_in,
        *requests_forwarded,
        *responses_forwarded,
        *responses_local,
        *retransmissions_absorbed,
        *retransmissions_sent,
        *dropped_malformed,
        *rejected_input_limits,
        *dropped_stray,
        *rejected_unknown_source,
        *rejected_no_route,
        *rejected_overload,
        *dropped_overload,
        *oc_responses,
        *oc_admitted,
        *oc_feedback_applied,
        *oc_feedback_ignored,
        *rejected_admission,
        *failovers,
        *probes_sent,
        *probe_failures,
        *records_dropped,
        *dropped_flood,
        *flood_blocks,
        *calls_created,
        *calls_active,
        *transactions_active,
        *timers_active,
        *admission_percent,
    ]
}

type ShellField = fn(&ShellCounters) -> u64;

/// The shell's per-shard counters (drops are one family with a `reason` label, below).
const SHELL_COUNTERS: [(&str, &str, ShellField); 15] = [
    (
        "datagrams_received",
        "Datagrams read from the shard's socket.",
        |c| c.datagrams_received,
    ),
    (
        "datagrams_processed",
        "Datagrams given to the shard's proxy core (received and owned, plus handed in).",
        |c| c.datagrams_processed,
    ),
    (
        "datagrams_without_call_id",
        "Received datagrams without a Call-ID, processed by the receiving shard.",
        |c| c.datagrams_without_call_id,
    ),
    (
        "handoff_out",
        "Received datagrams handed to the shard owning their Call-ID.",
        |c| c.handed_off,
    ),
    ("handoff_in", "Datagrams handed in by other shards.", |c| {
        c.handed_in
    }),
    (
        "receive_errors",
        "Socket receive errors (other than nothing to read).",
        |c| c.receive_errors,
    ),
    (
        "receive_batches",
        "recvmmsg calls that returned datagrams.",
        |c| c.receive_batches,
    ),
    (
        "datagrams_sent",
        "Datagrams accepted by the kernel for sending.",
        |c| c.datagrams_sent,
    ),
    (
        "send_errors",
        "Datagrams the kernel refused to send (unreachable, too large, wrong family).",
        |c| c.send_errors,
    ),
    (
        "send_buffer_full",
        "Times the socket send buffer was full.",
        |c| c.send_buffer_full,
    ),
    ("send_batches", "sendmmsg calls.", |c| c.send_batches),
    (
        "timeouts",
        "Timer expiries handled by the proxy core.",
        |c| c.timeouts,
    ),
    ("parks", "Times the shard slept with nothing to do.", |c| {
        c.parks
    }),
    (
        "datagrams_received_shard_port",
        "Datagrams read from the shard's own port (server.shard_ports): sent by the peer \
         straight to the shard owning the call.",
        |c| c.datagrams_received_shard_port,
    ),
    (
        "handoff_from_shard_port",
        "Handed-off datagrams that came in on a shard's own port yet belonged to another \
         shard (a peer using an old Record-Route after a change of shard count).",
        |c| c.handoff_from_shard_port,
    ),
];

const DROP_REASONS: [(&str, ShellField); 5] = [
    ("handoff_full", |c| c.dropped_handoff_full),
    ("handoff_closed", |c| c.dropped_handoff_closed),
    ("oversize", |c| c.dropped_oversize),
    ("bad_source", |c| c.dropped_bad_source),
    ("send_blocked", |c| c.dropped_send_blocked),
];

/// Render the latest view of every shard. `handoff_capacity` is the number of datagrams
/// one hand-off queue holds at most.
pub fn render(shards: &[ShardView], handoff_capacity: usize) -> String {
    let mut e = Exposition {
        out: String::with_capacity(8192 + shards.len() * 4096),
    };
    let labels: Vec<String> = shards
        .iter()
        .map(|v| v.snapshot.shard.to_string())
        .collect();

    e.family(
        "junction_build_info",
        Kind::Gauge,
        "Build of the running junction (value is 1).",
    );
    e.sample(
        "junction_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    e.family(
        "junction_shards",
        Kind::Gauge,
        "Shards (pinned executors) configured.",
    );
    e.sample("junction_shards", &[], shards.len() as u64);
    e.family(
        "junction_shard_up",
        Kind::Gauge,
        "1 while the shard is serving its socket, else 0.",
    );
    for (view, shard) in shards.iter().zip(&labels) {
        let cpu = view.snapshot.cpu.to_string();
        let up = u64::from(view.state == ShardState::Running);
        e.sample("junction_shard_up", &[("shard", shard), ("cpu", &cpu)], up);
    }

    for (name, help, field) in SHELL_COUNTERS {
        let name = format!("junction_{name}_total");
        e.family(&name, Kind::Counter, help);
        for (view, shard) in shards.iter().zip(&labels) {
            e.sample(&name, &[("shard", shard)], field(&view.snapshot.shell));
        }
    }
    let dropped = "junction_datagrams_dropped_total";
    e.family(
        dropped,
        Kind::Counter,
        "Datagrams the shell dropped, by reason.",
    );
    for (view, shard) in shards.iter().zip(&labels) {
        for (reason, field) in DROP_REASONS {
            e.sample(
                dropped,
                &[("shard", shard), ("reason", reason)],
                field(&view.snapshot.shell),
            );
        }
    }
    let crossed = "junction_handoff_kind_total";
    e.family(
        crossed,
        Kind::Counter,
        "Datagrams handed off to the shard owning their call, by what they were: with \
         server.shard_ports, responses and in-dialog requests reach their owner directly.",
    );
    for (view, shard) in shards.iter().zip(&labels) {
        for (kind, n) in HANDOFF_KINDS
            .iter()
            .zip(view.snapshot.shell.handoff_by_kind)
        {
            e.sample(crossed, &[("shard", shard), ("kind", kind)], n);
        }
    }

    let core: Vec<[u64; 30]> = shards
        .iter()
        .map(|v| core_values(&v.snapshot.core))
        .collect();
    for (i, (short, kind, help)) in CORE_METRICS.iter().enumerate() {
        let name = match kind {
            Kind::Counter => format!("junction_core_{short}_total"),
            Kind::Gauge => format!("junction_{short}"),
        };
        e.family(&name, *kind, help);
        for (values, shard) in core.iter().zip(&labels) {
            let value = values.get(i).copied().unwrap_or(0);
            if *short == ADMISSION_RATIO {
                e.sample_f64(&name, &[("shard", shard)], value as f64 / 100.0);
            } else {
                e.sample(&name, &[("shard", shard)], value);
            }
        }
    }

    // Queue depths per shard, in and out (linear in the shard count; the queues themselves
    // are one per ordered pair of shards).
    let depth = "junction_handoff_queue_datagrams";
    e.family(
        depth,
        Kind::Gauge,
        "Datagrams in the shard's hand-off queues: direction=\"in\" queued for the shard by the others, direction=\"out\" the shard queued for the others, not yet taken (handed off minus handed in; shards publish at different moments, so this is approximate).",
    );
    for (view, shard) in shards.iter().zip(&labels) {
        let (queued_in, queued_out) = handoff_depths(shards, view.snapshot.shard);
        e.sample(depth, &[("shard", shard), ("direction", "in")], queued_in);
        e.sample(depth, &[("shard", shard), ("direction", "out")], queued_out);
    }
    let capacity = "junction_handoff_queue_capacity_datagrams";
    e.family(
        capacity,
        Kind::Gauge,
        "Datagrams one hand-off queue (one per ordered pair of shards) holds at most.",
    );
    e.sample(capacity, &[], handoff_capacity as u64);
    e.out
}

/// Datagrams queued towards shard `of` by the others, and by it towards the others: for each
/// pair, what the sender handed off minus what the owner took in (clamped at 0: they publish
/// at different moments).
fn handoff_depths(shards: &[ShardView], of: usize) -> (u64, u64) {
    let pending = |from: &ShardView, to: &ShardView| -> u64 {
        let out = from
            .snapshot
            .handoff_out_to
            .get(to.snapshot.shard)
            .copied()
            .unwrap_or(0);
        let taken = to
            .snapshot
            .handoff_in_from
            .get(from.snapshot.shard)
            .copied()
            .unwrap_or(0);
        out.saturating_sub(taken)
    };
    let Some(this) = shards.iter().find(|v| v.snapshot.shard == of) else {
        return (0, 0);
    };
    let others = || shards.iter().filter(|v| v.snapshot.shard != of);
    let queued_in = others().map(|from| pending(from, this)).sum();
    let queued_out = others().map(|to| pending(this, to)).sum();
    (queued_in, queued_out)
}

/// The kernel's drop counter of each shard's socket (SO_MEMINFO): its receive buffer was
/// full, or the kernel pre-filter discarded the datagram (src/shard/filter.rs).
pub fn render_socket_drops(fds: &[std::os::fd::RawFd], out: &mut String) {
    let mut e = Exposition {
        out: std::mem::take(out),
    };
    let name = "junction_socket_drops_total";
    e.family(
        name,
        Kind::Counter,
        "Datagrams the kernel dropped on the shard's socket: receive buffer full, or discarded by the kernel pre-filter (requests from unknown sources with unknown_source = \"drop\").",
    );
    for (shard, fd) in fds.iter().enumerate() {
        let drops = crate::shard::socket_drops(*fd).unwrap_or(0);
        e.sample(name, &[("shard", &shard.to_string())], drops);
    }
    *out = e.out;
}

/// The control plane's own counters (not per shard).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlCounters {
    /// Reloads refused because the file could not be read or was invalid.
    pub reload_failures: u64,
}

/// The configuration reload families (appended to `render`'s exposition): per shard, the
/// reloads it applied and the generation it routes with; the refused reloads.
pub fn render_config(shards: &[ShardView], control: ControlCounters, out: &mut String) {
    let mut e = Exposition {
        out: std::mem::take(out),
    };
    let reloads = "junction_config_reloads_total";
    e.family(
        reloads,
        Kind::Counter,
        "Reloaded configurations this shard has switched to.",
    );
    for view in shards {
        let shard = view.snapshot.shard.to_string();
        e.sample(reloads, &[("shard", &shard)], view.snapshot.config_reloads);
    }
    let generation = "junction_config_generation";
    e.family(
        generation,
        Kind::Gauge,
        "Configuration generation the shard routes with (0 at start, +1 per accepted reload).",
    );
    for view in shards {
        let shard = view.snapshot.shard.to_string();
        e.sample(
            generation,
            &[("shard", &shard)],
            view.snapshot.config_generation,
        );
    }
    let failures = "junction_config_reload_failures_total";
    e.family(
        failures,
        Kind::Counter,
        "Reloads refused (file unreadable or invalid); the running configuration stayed.",
    );
    e.sample(failures, &[], control.reload_failures);
    *out = e.out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Check the exposition format 0.0.4 rules we rely on, line by line; return the
    /// samples as (name, labels) -> value.
    fn check_exposition(text: &str) -> BTreeMap<(String, String), f64> {
        assert!(text.ends_with('\n'), "exposition must end with a newline");
        let mut typed: BTreeMap<String, String> = BTreeMap::new();
        let mut helped: BTreeSet<String> = BTreeSet::new();
        let mut samples = BTreeMap::new();
        let mut current: Option<String> = None;
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.chars().enumerate().all(|(i, c)| {
                    c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
                })
        };
        for line in text.lines() {
            assert!(!line.is_empty(), "empty line");
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP without text");
                assert!(valid_name(name), "bad name {name}");
                assert!(!help.is_empty());
                assert!(helped.insert(name.to_string()), "second HELP for {name}");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE without type");
                assert!(valid_name(name), "bad name {name}");
                assert!(kind == "counter" || kind == "gauge", "type {kind}");
                assert!(helped.contains(name), "TYPE before HELP for {name}");
                assert!(
                    typed.insert(name.to_string(), kind.to_string()).is_none(),
                    "second TYPE for {name}"
                );
                if kind == "counter" {
                    assert!(
                        name.ends_with("_total"),
                        "counter {name} must end in _total"
                    );
                }
                current = Some(name.to_string());
                continue;
            }
            assert!(!line.starts_with('#'), "unknown comment {line}");
            let (series, value) = line.rsplit_once(' ').expect("sample without value");
            let value: f64 = value.parse().expect("value is a number");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let labels = rest.strip_suffix('}').expect("unclosed labels");
                    for pair in labels.split(',') {
                        let (key, val) = pair.split_once('=').expect("label without =");
                        assert!(valid_name(key), "bad label name {key}");
                        assert!(
                            val.len() >= 2 && val.starts_with('"') && val.ends_with('"'),
                            "unquoted {val}"
                        );
                    }
                    (name, labels.to_string())
                }
                None => (series, String::new()),
            };
            assert!(valid_name(name), "bad sample name {name}");
            assert_eq!(
                current.as_deref(),
                Some(name),
                "sample {name} outside its family"
            );
            assert!(
                samples
                    .insert((name.to_string(), labels.clone()), value)
                    .is_none(),
                "duplicate series {name}{{{labels}}}"
            );
        }
        samples
    }

    fn view(shard: usize, shards: usize, state: ShardState) -> ShardView {
        let mut snapshot = ShardSnapshot::new(shard, shards, shard);
        snapshot.shell.datagrams_received = 10 + shard as u64;
        snapshot.shell.dropped_handoff_full = 3;
        snapshot.core.requests_in = 7;
        snapshot.core.calls_active = 2 + shard as u64;
        snapshot.core.admission_percent = 25;
        ShardView { state, snapshot }
    }

    #[test]
    fn rendering_is_well_formed_and_complete() {
        let mut views = vec![
            view(0, 2, ShardState::Running),
            view(1, 2, ShardState::Starting),
        ];
        views[0].snapshot.handoff_out_to[1] = 50;
        views[1].snapshot.handoff_in_from[0] = 45;
        views[1].snapshot.handoff_out_to[0] = 4;
        views[0].snapshot.handoff_in_from[1] = 9; // published later than the sender: clamp
        let text = render(&views, 4096);
        let samples = check_exposition(&text);
        let get = |name: &str, labels: &str| {
            *samples
                .get(&(name.to_string(), labels.to_string()))
                .unwrap_or_else(|| panic!("missing {name}{{{labels}}} in\n{text}"))
        };
        assert_eq!(
            get("junction_datagrams_received_total", "shard=\"1\""),
            11.0
        );
        assert_eq!(
            get(
                "junction_datagrams_dropped_total",
                "shard=\"0\",reason=\"handoff_full\""
            ),
            3.0
        );
        assert_eq!(get("junction_core_requests_in_total", "shard=\"0\""), 7.0);
        assert_eq!(get("junction_calls_active", "shard=\"1\""), 3.0);
        assert_eq!(get("junction_shard_up", "shard=\"0\",cpu=\"0\""), 1.0);
        assert_eq!(get("junction_shard_up", "shard=\"1\",cpu=\"1\""), 0.0);
        let depth = |shard: &str, direction: &str| {
            get(
                "junction_handoff_queue_datagrams",
                &format!("shard=\"{shard}\",direction=\"{direction}\""),
            )
        };
        // 0 -> 1: 50 handed off, 45 taken in; 1 -> 0: 4 handed off, 9 "taken" (clamped).
        assert_eq!((depth("0", "out"), depth("1", "in")), (5.0, 5.0));
        assert_eq!((depth("1", "out"), depth("0", "in")), (0.0, 0.0));
        assert_eq!(get("junction_admission_ratio", "shard=\"0\""), 0.25);
        assert_eq!(get("junction_handoff_queue_capacity_datagrams", ""), 4096.0);
        assert_eq!(get("junction_shards", ""), 2.0);
        // Every CoreStats field is exported once per shard.
        for (name, kind, _) in CORE_METRICS {
            let name = match kind {
                Kind::Counter => format!("junction_core_{name}_total"),
                Kind::Gauge => format!("junction_{name}"),
            };
            for shard in ["0", "1"] {
                get(&name, &format!("shard=\"{shard}\""));
            }
        }
    }

    #[test]
    fn config_reload_families_follow_render() {
        let mut views = vec![
            view(0, 2, ShardState::Running),
            view(1, 2, ShardState::Running),
        ];
        views[0].snapshot.config_reloads = 3;
        views[0].snapshot.config_generation = 4;
        views[1].snapshot.config_reloads = 1;
        views[1].snapshot.config_generation = 4;
        let mut text = render(&views, 4096);
        render_config(&views, ControlCounters { reload_failures: 2 }, &mut text);
        let samples = check_exposition(&text);
        let get = |name: &str, labels: &str| samples.get(&(name.to_string(), labels.to_string()));
        assert_eq!(
            get("junction_config_reloads_total", "shard=\"0\""),
            Some(&3.0)
        );
        assert_eq!(
            get("junction_config_reloads_total", "shard=\"1\""),
            Some(&1.0)
        );
        assert_eq!(get("junction_config_generation", "shard=\"1\""), Some(&4.0));
        assert_eq!(get("junction_config_reload_failures_total", ""), Some(&2.0));
        let mut copy = ShardSnapshot::default();
        copy.copy_from(&views[0].snapshot);
        assert_eq!((copy.config_reloads, copy.config_generation), (3, 4));
    }

    #[test]
    fn handoff_series_grow_linearly_with_the_shards() {
        let mut per_shard = None;
        for shards in [2usize, 8, 32] {
            let views: Vec<ShardView> = (0..shards)
                .map(|i| view(i, shards, ShardState::Running))
                .collect();
            let text = render(&views, 4096);
            let samples = check_exposition(&text);
            let count = |prefix: &str| {
                samples
                    .keys()
                    .filter(|(name, _)| name.starts_with(prefix))
                    .count()
            };
            // The queue depth: in and out per shard.
            assert_eq!(count("junction_handoff_queue_datagrams"), 2 * shards);
            // Every hand-off family together: the same number per shard whatever the
            // shard count, plus the capacity.
            let all = count("junction_handoff") - 1;
            assert_eq!(all % shards, 0, "{shards} shards: {all} series");
            let n = all / shards;
            assert_eq!(*per_shard.get_or_insert(n), n, "{shards} shards");
        }
    }

    #[test]
    fn rendering_with_no_shards_is_still_well_formed() {
        check_exposition(&render(&[], 0));
    }

    #[test]
    fn core_values_follow_the_field_order() {
        let stats = CoreStats {
            requests_in: 1,
            responses_in: 2,
            requests_forwarded: 3,
            responses_forwarded: 4,
            responses_local: 5,
            retransmissions_absorbed: 6,
            retransmissions_sent: 7,
            dropped_malformed: 8,
            rejected_input_limits: 9,
            dropped_stray: 10,
            rejected_unknown_source: 11,
            rejected_no_route: 12,
            rejected_overload: 13,
            dropped_overload: 14,
            oc_responses: 15,
            oc_admitted: 16,
            oc_feedback_applied: 17,
            oc_feedback_ignored: 18,
            rejected_admission: 19,
            failovers: 20,
            probes_sent: 21,
            probe_failures: 22,
            records_dropped: 23,
            dropped_flood: 24,
            flood_blocks: 25,
            calls_created: 26,
            calls_active: 27,
            transactions_active: 28,
            timers_active: 29,
            admission_percent: 30,
        };
        let expected: Vec<u64> = (1..=30).collect();
        assert_eq!(core_values(&stats).to_vec(), expected);
    }
}
