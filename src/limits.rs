//! Every bound junction enforces, in one place, each with its reason. A full table or an
//! oversized input means "answer (503/513/400) or drop, and count it", never growth.

use std::time::Duration;

/// Largest UDP datagram we accept. RFC 3261 18.1.1 keeps UDP requests under the path MTU
/// unless they are larger than 1300 bytes, but real trunks send INVITEs with big SDP and
/// many headers; 64 KiB is the UDP maximum. Larger: unreadable, dropped.
pub const DATAGRAM_BYTES_MAX: usize = 65_535;

/// Largest message we forward (after our edits). RFC 4475 longreq is 3.5 KB; carriers see
/// ~4-6 KB INVITEs with multipart bodies. Over this: 513 Message Too Large.
pub const MESSAGE_BYTES_MAX: usize = 16_384;

/// Header lines indexed per message. RFC 4475 longreq has ~50 lines; real INVITEs ~20-40.
/// More lines: 400 (the scanner's table is fixed-size so scanning never allocates).
pub const HEADERS_MAX: usize = 128;

/// Via values per message. Each proxy hop adds one; 70 is the Max-Forwards default, so a
/// legitimate request never carries more than 70.
pub const VIAS_MAX: usize = 70;

/// Longest header line (name, colon and value, folded continuation lines included) in a
/// message, by default (`[limits] max_header_line_bytes`). Real header lines are under
/// 1 KB; the longest legitimate ones (Authorization, long Via branches, P-Charging-Vector,
/// RFC 4475's torture cases) stay under 2 KB. Longer: 400 to a request, a response dropped.
pub const HEADER_LINE_BYTES_DEFAULT: usize = 4096;

/// Longest Request-URI by default (`[limits] max_uri_bytes`). A trunk's Request-URI is a
/// number at a host with a few parameters (~100 bytes); 1 KB leaves room for long tgrp/
/// routing parameters. Longer: 414 Request-URI Too Long (RFC 3261 21.4.12).
pub const URI_BYTES_DEFAULT: usize = 1024;

/// The configurable input limits (`[limits]`), each no looser than the hard bound above it
/// (MESSAGE_BYTES_MAX, HEADERS_MAX, VIAS_MAX are also the defaults). Over a limit: a 4xx to
/// a request from a trunk (513 for size, 483 for Vias, 414 for the URI, 400 otherwise),
/// otherwise drop; counted in `rejected_input_limits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputLimits {
    pub max_message_bytes: usize,
    pub max_headers: usize,
    pub max_header_line_bytes: usize,
    pub max_uri_bytes: usize,
    pub max_vias: usize,
}

impl Default for InputLimits {
    fn default() -> Self {
        InputLimits {
            max_message_bytes: MESSAGE_BYTES_MAX,
            max_headers: HEADERS_MAX,
            max_header_line_bytes: HEADER_LINE_BYTES_DEFAULT,
            max_uri_bytes: URI_BYTES_DEFAULT,
            max_vias: VIAS_MAX,
        }
    }
}

/// Largest `max_message_bytes` an operator may set: a UDP datagram, less what our edits add.
pub const MESSAGE_BYTES_CONFIGURABLE_MAX: usize = DATAGRAM_BYTES_MAX - REWRITE_GROWTH_BYTES_MAX;

/// Extra bytes our edits may add to a forwarded message (Via, Record-Route, received/rport,
/// Max-Forwards, Content-Length). Output buffers are sized input + this.
pub const REWRITE_GROWTH_BYTES_MAX: usize = 512;

/// Server + client transactions per shard. A basic call holds 4 transactions (INVITE and
/// BYE, each a server and a client one) for up to 32 s (Timer L/M/J); at 20,000 calls/s per
/// shard (the overload ramp's peak on our machines) that is ~2.6 M. Once a transaction is
/// answered it keeps only the response it may retransmit, ~0.5 KB. Beyond: new INVITEs get
/// 503, anything else is relayed statelessly (calls already up are never lost; a CANCEL
/// of a pending INVITE still gets its two, at most once per INVITE). The
/// overload ramp hit the earlier bound of 1 M at 32 s of ~20,000 calls/s, and its 503s to
/// BYEs cut calls short.
pub const TRANSACTIONS_PER_SHARD_MAX: usize = 4_000_000;

/// Calls (dialog state) per shard. At < 1 KB each, 2 M calls is ~2 GB per shard.
pub const CALLS_PER_SHARD_MAX: usize = 2_000_000;

/// The table bounds a shard's core enforces: TRANSACTIONS_PER_SHARD_MAX and
/// CALLS_PER_SHARD_MAX, which no run reaches in a test's time; tests lower them
/// (`Core::set_table_bounds`) to see what a full table does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableBounds {
    pub transactions: usize,
    pub calls: usize,
}

impl Default for TableBounds {
    fn default() -> Self {
        TableBounds {
            transactions: TRANSACTIONS_PER_SHARD_MAX,
            calls: CALLS_PER_SHARD_MAX,
        }
    }
}

/// A confirmed call with no in-dialog request seen for this long is forgotten (a lost BYE
/// must not leak state forever). 12 h exceeds any billable call a trunk carries.
pub const CALL_IDLE_MAX: Duration = Duration::from_secs(12 * 3600);

/// A call that ended (BYE answered, or final non-2xx) is kept this long to absorb late
/// retransmissions and in-dialog stragglers: 64*T1, the longest RFC 3261 transaction life.
pub const CALL_LINGER: Duration = Duration::from_secs(32);

/// Datagrams queued from one shard to another. A full queue drops (and counts) rather than
/// block the receiving shard; 4096 is ~40 ms of 100k datagrams/s.
pub const HANDOFF_QUEUE_MAX: usize = 4096;

/// Datagrams read or written per recvmmsg/sendmmsg call. 32 keeps one batch's buffers
/// (32 x 64 KiB = 2 MiB) within a shard's working set while amortising the syscall.
pub const BATCH_DATAGRAMS_MAX: usize = 32;

/// Bytes read of the datagram an ICMP error quotes (IP_RECVERR, shard/errqueue.rs): the
/// quote is at most 576 (IPv4) or 1280 (IPv6) bytes in all, and junction's own branch,
/// which names the shard and transaction, is within the first few hundred.
pub const ICMP_QUOTED_BYTES_MAX: usize = 1280;

/// ICMP errors read from a shard socket's error queue per loop round: a burst (a dead
/// gateway answering every retransmission) cannot keep the shard from its datagrams; the
/// rest wait for the next round.
pub const ICMP_ERRORS_PER_ROUND_MAX: usize = 64;

/// Kernel socket buffer size requested per shard socket (SO_RCVBUF/SO_SNDBUF): absorbs
/// bursts of ~2000 INVITEs while a shard is busy.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// glommio io_memory per executor: each executor pins 3 rings; RLIMIT_MEMLOCK is 8 MiB on
/// our machines, and below 512 KiB glommio refuses to start (measured with glommio 0.9).
pub const IO_MEMORY_BYTES: usize = 512 << 10;

/// Bytes of a Call-ID we accept. RFC 3261 sets no maximum; 256 covers every UA we know and
/// bounds the call table's memory.
pub const CALL_ID_BYTES_MAX: usize = 256;

/// Metrics HTTP: requests larger than this are refused, connections time out after this.
pub const HTTP_REQUEST_BYTES_MAX: usize = 8192;
pub const HTTP_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Metrics HTTP connections served at once; more are closed at once. A scraper, a health
/// checker and a few operators need a handful; 256 bounds the descriptors and memory (a few
/// KiB each) a misbehaving client can hold.
pub const HTTP_CONNECTIONS_MAX: usize = 256;

/// Metrics HTTP handler threads (the runtime's blocking pool): rendering /metrics takes a
/// few ms of CPU and a reload waits for the shards, so a few threads keep /healthz answering
/// meanwhile without taking CPU time from the shards.
pub const HTTP_WORKERS_MAX: usize = 4;

/// The longest a metrics HTTP connection lives, whatever it does (a client that never reads
/// its response): the request timeout, plus a reload's wait for the shards, with margin.
pub const HTTP_CONNECTION_MAX: Duration = Duration::from_secs(30);

/// How often a shard publishes its counters to the control plane.
pub const METRICS_PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

// --- Bounds of the shard shell (src/shard, src/control) ---

/// Hand-off batches queued per ordered shard pair. A shard hands a whole receive batch's
/// worth of foreign datagrams to each owner in one message (one channel operation and at
/// most one wake-up of the owner per batch), so the channel counts batches; dividing by the
/// batch size keeps the datagrams queued per pair within HANDOFF_QUEUE_MAX.
pub const HANDOFF_QUEUE_BATCHES_MAX: usize = HANDOFF_QUEUE_MAX / BATCH_DATAGRAMS_MAX;

/// When the socket send buffer is full (EAGAIN/ENOBUFS) the shard retries sendmmsg after
/// this long. glommio 0.9 offers no wait for writability, and its io_uring `send_to`
/// fallback sends only the first byte of the datagram (`iov_len: 1` in reactor.rs
/// `rushed_sendmsg`), so a timer is the only non-spinning wait.
pub const SEND_RETRY_INTERVAL: Duration = Duration::from_millis(1);

/// Datagrams still blocked on a full send buffer after this long are dropped and counted. A
/// 4 MiB send buffer drains in well under 100 ms at any link rate, so a longer stall means
/// the host is wedged; holding the shard longer would stall every call it owns.
pub const SEND_BLOCKED_MAX: Duration = Duration::from_millis(100);

/// After a receive error other than EAGAIN the shard waits this long before polling its
/// socket again, so a persistent error cannot make it spin.
pub const RECV_ERROR_BACKOFF: Duration = Duration::from_millis(1);

/// A busy shard holds datagrams for another shard up to this long to fill a hand-off batch
/// (up to BATCH_DATAGRAMS_MAX): full batches mean fewer channel operations and owner
/// wake-ups, and HANDOFF_QUEUE_BATCHES_MAX then really holds ~HANDOFF_QUEUE_MAX datagrams
/// (one batch per receive batch averaged ~7 datagrams under load, so the queue overflowed
/// at ~900). An idle shard hands off before it sleeps, so this only delays a busy shard.
pub const HANDOFF_BATCH_DELAY_MAX: Duration = Duration::from_micros(500);

/// Longest a shard sleeps without looking around, even with nothing scheduled. glommio 0.9
/// can put an executor to sleep while one of its tasks is runnable (when its preempt timer
/// fires before the task queues run, see shard/run.rs); this bounds such a stall. An idle
/// shard costs one wake-up per interval.
pub const SHARD_PARK_MAX: Duration = Duration::from_millis(100);

/// Call records a shard holds until the shell hands them to the CDR writer (drained after
/// every batch). If nobody drains them (CDRs off) or the writer falls behind, older records
/// are dropped and counted rather than grow the shard's memory.
pub const RECORDS_PENDING_MAX: usize = 65_536;

// --- Bounds of observability (src/control/cdr.rs, log.rs, metrics) ---

/// Call records queued from the shards to the CDR writer. A shard never waits for the
/// disk: when the queue is full the record is dropped and counted (`cdr_dropped`). 16,384
/// records (~8 MB) are ~16 s of a 1,000 calls/s server, long enough to ride out a slow
/// disk or a rotation; a writer further behind than that is not catching up.
pub const CDR_QUEUE_MAX: usize = 16_384;

/// The CDR writer writes out its buffer at least this often (and whenever its queue runs
/// empty), so a crash loses at most about a second of records and `tail -f` sees them.
pub const CDR_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// A problem that repeats (CDR write errors, CDR drops) is logged at most once per this
/// interval, with the count since the previous line: a full disk must not flood the log.
pub const LOG_REPEAT_INTERVAL: Duration = Duration::from_secs(10);

/// Histograms a shard copies into its published statistics per loop round (the rest in the
/// next rounds). One 3-significant-digit histogram of a trunk is ~170 KB and takes ~14 µs
/// to copy; a shard whose 100 trunks all carried calls would otherwise stall ~6 ms at once.
/// 8 bounds a round's extra latency to ~0.1 ms.
pub const STATS_COPY_HISTOGRAMS_MAX: usize = 8;

/// Source addresses one shard's flood guard tracks. A spoofed-source flood cannot grow the
/// table past this (~64 K entries, ~3 MiB); untracked sources are still never routed.
pub const FLOOD_SOURCES_MAX: usize = 65_536;

/// Overload control (src/sip/overload.rs) re-evaluates its admission fraction this often.
/// 50 ms: a rising backlog is met within a few intervals, long before the callers' T1
/// (500 ms) retransmissions would add to it, and an interval still spans hundreds of
/// receive batches, so its smallest queueing delay is a reliable "did the shard ever
/// catch up" signal.
pub const OVERLOAD_INTERVAL: Duration = Duration::from_millis(50);

/// A standing queue (smallest kernel queueing delay of a whole interval) above this means
/// the shard is saturated. A shard that keeps up empties its socket every few hundred
/// microseconds, so even 1 ms that never drains within 50 ms is more work than the shard
/// does. Kept small because a queue is not free: a datagram that waited is read cold from
/// memory, and the shard's CPU time per call was higher while it shed (45-54 us) than just
/// below its capacity (42-47 us). (The queue does not settle at this target: at a steady
/// 2x load it averaged 22-29 ms while parked time was taken for spare, and 7.6 ms since
/// OVERLOAD_SATURATION_WEIGHT's change.) Measured (22,000 calls/s from an RFC 7339 trunk,
/// shard at 40% of a CPU, five alternating pairs of 25 s runs): with 5 ms, 7,050 / 7,059 /
/// 8,099 / 7,586 / 6,840 calls/s answered; with 1 ms, 7,983 / 6,951 / 8,105 / 8,280 / 8,116.
pub const OVERLOAD_DELAY_TARGET: Duration = Duration::from_millis(1);

/// A standing queue above this that is still growing means even answering 503 costs more
/// than the shard has: new calls that are not admitted are then dropped before parsing
/// (their callers retransmit after T1). 100 ms: the 4 MiB receive buffer holds ~100 ms of
/// datagrams at a shard's capacity, so this is where the kernel would start dropping
/// everyone's datagrams. Not sooner: each dropped INVITE comes back as retransmissions.
/// Measured (RFC 7339 trunk, shard at 20% of a CPU, ramp to 2x): with 20 ms, 37,591 new
/// calls were dropped and INVITE->200 p99 was 1.55 s; with 100 ms, 3,347 and 0.27 s, for
/// the same completed calls.
pub const OVERLOAD_DROP_DELAY: Duration = Duration::from_millis(100);

/// Consecutive intervals with a standing queue before overload control sheds anything: a
/// single one is as likely a stall of the shard's thread (measured: 100-200 ms stalls at
/// 12,000 calls/s with the shard at 40% of its CPU, while its tables grew) as more work than
/// the shard can do. Two (100 ms) in a row are overload.
pub const OVERLOAD_PERSIST_INTERVALS: u32 = 2;

/// A standing queue that shrank by at least this since the previous interval is being worked
/// off: overload control holds the admission fraction instead of cutting it further. 1 ms
/// per 50 ms interval: what arrives is at least 2% below what the shard does. Measured
/// (2x overload, shard at 40% of a CPU): cutting on the backlog's size alone swung the
/// fraction between 0.23 and 0.73 every ~1.5 s, with the shard idle in each trough.
pub const OVERLOAD_DRAIN_MIN: Duration = Duration::from_millis(1);

/// How a persistent backlog that is not draining cuts admission. The shard's queueing delay
/// grew by `g` in an interval of length `L` because `g / L` more work arrived than it did
/// (as a share of what it can do); the cut removes that share, plus OVERLOAD_BACKLOG_SHARE
/// of the backlog itself so that it drains, from the admission in force when that work was
/// admitted: OVERLOAD_LAG_INTERVALS earlier (the trunk hears of a cut with its next
/// response, and the calls admitted before it still send their ACKs and BYEs). Cutting the
/// current fraction on every such interval, as the first controller did (x0.9), cut again
/// and again while the effect of the first cut was still on its way: at a steady 2x load
/// (22,000 calls/s from an RFC 7339 trunk, shard at 40% of a CPU) admission swung between
/// 0.36 and 0.55 and the shard was parked 39% of the time (16% with the idle-driven
/// increase below alone); with this cut as well it swung between 0.46 and 0.70, was parked
/// 9%, and answered 11,260 and 11,464 calls/s, against 10,572 (one run) and 9,990 and
/// 9,996 (idle-driven increase alone).
pub const OVERLOAD_LAG_INTERVALS: usize = 2;
/// ... the share of the standing backlog removed per interval (worked off in ~10 intervals) ...
pub const OVERLOAD_BACKLOG_SHARE: f64 = 0.1;
/// ... and the bounds of one cut: at least 2% (a backlog that persists is overload even
/// when it does not grow), at most half (one bad measurement never empties the shard).
/// The least cut is what a shard that sits just over its capacity gets, again and again:
/// 5% overshot (22,000 calls/s from an RFC 7339 trunk, shard at 40% of a CPU, five
/// alternating pairs of 25 s runs: 6,960 / 7,618 / 7,550 / 8,317 / 7,808 calls/s answered
/// with 5%, 8,173 / 8,053 / 7,866 / 7,945 / 8,314 with 2%).
pub const OVERLOAD_CUT_MIN: f64 = 0.02;
pub const OVERLOAD_CUT_MAX: f64 = 0.5;

/// Per interval without a standing queue admission grows by this ...
/// Tuned with a steady 2x overload (22,000 calls/s offered to a shard held to 40% of a
/// CPU): 0.05 added a tenth of a 2x load in each 50 ms, so the backlog came back every
/// second; with an RFC 7339 trunk, two runs each, 0.01 answered 11,433 and 11,265 calls/s,
/// 0.05 10,501 and 10,293 (plain trunk: 7,553 and 8,678 against 5,995 and 7,398).
pub const OVERLOAD_INCREASE: f64 = 0.01;

/// ... plus this share of the fraction times the share of the interval the shard was
/// parked with nothing to do: a shard idle half the time grows admission by 10% per
/// interval, one that is busy throughout only by OVERLOAD_INCREASE. 0.1 left the shard
/// parked 15-17% of the time at a 2x load (10,977 and 11,335 calls/s answered); 0.2, 9%.
pub const OVERLOAD_IDLE_GAIN: f64 = 0.2;

/// The share of wall time a backlogged shard's thread runs is learnt as a moving average,
/// each backlogged interval weighing this much: a quarter, so that one interval cut short
/// by a stall does not move it far, and a change of quota is learnt within ~10 intervals.
/// Measured (22,000 calls/s from an RFC 7339 trunk, shard at 40% of a CPU): taking parked
/// time for spare, admission cycled about once a second (regrown to ~0.55 on parked time,
/// then cut to ~0.2 by the queue that followed), the standing queue averaged 22 ms and the
/// shard used 355-368 ms of its 400 ms per second, answering 6,990 / 7,732 / 8,467 calls/s;
/// with the learnt share, admission stayed within 0.38-0.47, the queue averaged 7.6 ms, the
/// shard used 411 ms per second and answered 9,145 / 9,448 / 8,850.
pub const OVERLOAD_SATURATION_WEIGHT: f64 = 0.25;

/// A shard reads its thread's CPU time (for overload control) at most this often: reading
/// it is a system call (~0.5 us), and 1 ms is 50 readings per 50 ms interval.
pub const SHARD_CPU_READ_INTERVAL: Duration = Duration::from_millis(1);

/// The admission fraction never falls below this: a few new calls per hundred still get
/// through, so the shard keeps measuring what it can carry and never starves a trunk.
pub const OVERLOAD_ADMIT_MIN: f64 = 0.02;

/// RFC 7339 overload control feedback: how long an `oc` value junction sends stays valid
/// (`oc-validity`, ms). The RFC's default. Overload control re-evaluates every
/// OVERLOAD_INTERVAL and every response to a supporting trunk carries the current value, so
/// a busy trunk hears a new one long before this lapses; a trunk that stops hearing from
/// junction (no responses at all) stops withholding calls after it.
pub const OC_VALIDITY_MS: u64 = 500;

/// RFC 7339 toward the trunks junction sends calls to: the longest `oc-validity` (ms) junction
/// honours. A trunk that asks for 100% for longer gets no call, so no response that could
/// lift it: past this, junction sends new calls again and hears a fresh value in their
/// responses. A minute is far beyond any real value (the RFC's default is 500 ms).
pub const OC_VALIDITY_HONOURED_MAX_MS: u64 = 60_000;

/// RFC 7339 toward the trunks: an `oc-seq` lower than the last one accepted from a trunk is
/// a stale, reordered response and is ignored (section 5.2), but only for this long after
/// that last acceptance (ms): a trunk that restarted and numbers afresh from a lower value
/// is heard again after it, rather than never.
pub const OC_SEQ_MEMORY_MS: u64 = 10_000;

/// Retry-After (seconds) in every 503 junction generates for a temporary condition (a shard
/// shedding new calls, trunks at their admission limits, a full table): long enough for a
/// burst to pass, short enough that a trunk retries within a caller's patience. The default
/// of `[server] retry_after_s`: RFC 3261 21.5.4 lets a client that honours it send nothing
/// else to junction for that long, so operators whose trunks do may want it shorter, or
/// left out (0).
pub const RETRY_AFTER_SECS: u32 = 5;
/// The most `[server] retry_after_s` may ask for: an hour. Longer would only keep trunks
/// that honour it away from a proxy that recovered long ago.
pub const RETRY_AFTER_SECS_MAX: u32 = 3600;

/// The memory cap by default (`[server] max_memory_mb`, MiB of resident memory). junction
/// at rest is ~30 MiB plus its routing tables (a million prefixes ~40 MiB); a call costs
/// ~1 KB once up and a few KB while being set up, so 4 GiB is far above what any flood of
/// our bounded tables can reach on a carrier server, and far below its RAM.
pub const MEMORY_MB_DEFAULT: u64 = 4096;

/// Smallest cap accepted: below this, the fixed buffers (~2 MiB receive batch per shard,
/// histograms, routing tables) leave no room for calls.
pub const MEMORY_MB_MIN: u64 = 64;

/// Largest cap accepted (1 TiB): a typo guard.
pub const MEMORY_MB_MAX: u64 = 1 << 20;

/// Memory pressure starts when resident memory exceeds this share of the cap (every new
/// call gets 503 + Retry-After) ...
pub const MEMORY_PRESSURE_ON: f64 = 0.9;

/// ... and ends when it falls below this share, or when the live calls + transactions fall
/// below this share of their number when memory neared the cap (resident memory does not
/// fall when calls end: tables keep their capacity for reuse). The gap keeps it from
/// flapping with every call that ends.
pub const MEMORY_PRESSURE_OFF: f64 = 0.8;

/// How often the control plane reads resident memory (/proc/self/statm): a flood grows
/// state at most a few MB per 100 ms, well within the 10% margin above.
pub const MEMORY_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// How long startup waits for the SIP port to be released before refusing to start: a
/// predecessor killed with SIGKILL keeps its sockets until the kernel has torn down its
/// io_uring rings (milliseconds, asynchronously), and a supervisor restarts at once.
pub const BIND_RELEASE_WAIT: Duration = Duration::from_secs(2);
