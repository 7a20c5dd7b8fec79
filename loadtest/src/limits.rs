//! Every limit of junction-load in one place, each with its reason. A limit that is reached is
//! counted and reported, never grown past.

/// Largest datagram we receive or build. SIP over UDP should stay under the path MTU
/// (RFC 3261 18.1.1: 1300 bytes); 8 KiB leaves room for large SDP and long Via stacks through
/// several proxies. A longer datagram arrives truncated and is dropped and counted.
pub const DATAGRAM_MAX: usize = 8192;

/// Datagrams moved per `recvmmsg`/`sendmmsg` call. 64 amortises the syscall well; more only
/// grows the per-worker buffers (64 x 8 KiB = 512 KiB).
pub const BATCH_MAX: usize = 64;

/// Header lines we index in one message. A SIP message through a few proxies has 15 to 30;
/// the rest of a longer message is still forwarded byte for byte where we echo it, but headers
/// past this count are not looked at.
pub const HEADER_LINES_MAX: usize = 64;

/// Record-Route / Route entries remembered for a dialog. Real route sets have 1 to 4 entries.
pub const ROUTE_SET_MAX: usize = 16;

/// Bytes of a remote tag we keep (To tag learnt from a response).
pub const TAG_MAX: usize = 64;

/// Calls one worker holds at once (active plus lingering for retransmissions). Bounds memory:
/// a call is a few hundred bytes plus its pooled buffer; 1 M calls stay under 1 GiB.
pub const CALLS_PER_WORKER_MAX: usize = 1 << 20;

/// Calls a worker starts in one turn of its loop when it has fallen behind its schedule, so
/// that responses keep being read while it catches up.
pub const STARTS_PER_TURN_MAX: u64 = 256;

/// Workers (threads) in one process: one per core, and there is no point in more.
pub const WORKERS_MAX: usize = 256;

/// Source ports per worker in "many source ports" mode (`-t un`). SIPp opens one socket per
/// call; a fixed pool gives the same spread of 4-tuples without a socket per call.
pub const PORTS_PER_WORKER_MAX: usize = 1024;

/// Kernel socket buffer we ask for (SO_RCVBUF/SO_SNDBUF, forced as root): a burst of a few
/// thousand datagrams must not be dropped while a worker is busy.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Largest scenario file read (bytes). SIPp scenarios are a few KiB.
pub const SCENARIO_FILE_MAX: usize = 1 << 20;

/// Steps in one scenario.
pub const SCENARIO_STEPS_MAX: usize = 1024;

/// Highest calls-per-second accepted on the command line, whole process.
pub const RATE_MAX: f64 = 1_000_000.0;

/// Longest hold, ring or answer delay accepted (ms): one day.
pub const DELAY_MS_MAX: u64 = 86_400_000;

/// Highest latency the histograms record (µs): 10 minutes. Larger values are clamped.
pub const LATENCY_US_MAX: u64 = 600_000_000;

/// How long the UAC keeps waiting for calls in progress after the last call was started,
/// beyond the longest hold time: 64*T1 (Timer B/F) plus the longest answer timeout.
pub const DRAIN_SLACK_MS: u64 = 2_000;

/// A busy worker with at most this many sockets reads them all after its tick instead of
/// asking epoll which are readable: one syscall less per turn, and an empty `recvmmsg` costs
/// about as much as `epoll_wait`. With more sockets epoll is cheaper.
pub const DIRECT_READ_SOCKETS_MAX: usize = 4;

/// Calls per second one worker is given by default before a second one is started. Measured
/// on a 2-vCPU VM: one UAC worker and one UAS worker each carry 15000 calls/s of basic calls
/// at well under half a core, while every extra worker costs its own wake-ups at low rates.
pub const RATE_PER_WORKER: f64 = 20_000.0;

/// Default batching tick of a UAC-only process (µs). Every turn of a worker costs a wake-up;
/// at 1000 calls/s a 5 ms tick sends INVITEs in bursts of 5 and cuts the UAC's CPU per call by
/// about half, at no cost in measured latency (kernel receive timestamps, grid intended times).
pub const UAC_TICK_US: u64 = 5_000;

/// Default batching tick of a process with a UAS (µs): the UAS answers a burst at most this
/// late, which the UAC measures as latency of the system under test; keep it small. (An idle
/// worker answers the first datagram at once.)
pub const UAS_TICK_US: u64 = 1_000;
