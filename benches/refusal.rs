//! CPU of a refused call in the sans-IO core, against a whole call. A refused call is an
//! INVITE from a trunk answered 503 (the shard sheds it, here because memory pressure is set)
//! and the caller's ACK to that 503; a whole call is INVITE, 100, 200, ACK, BYE, 200 with
//! the same messages. The two alternate call by call, so both see the same machine, at
//! 10,000 calls/s of virtual time; only calls after the first 32 virtual seconds count, when
//! the whole calls' tables have reached their steady size (junction keeps finished calls for
//! 64*T1).
//!
//! While a shard refuses the calls of a trunk that does not support RFC 7339, every refusal
//! takes capacity from the calls it admits; this is the core's part of that cost. The
//! kernel's part (a datagram in, one out, one in again) comes on top.
//!
//! Run: `cargo bench --bench refusal` (argument: CALLS of each kind counted, default 100000).

mod common;

use mimalloc::MiMalloc;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    let calls = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<u64>().ok())
        .unwrap_or(100_000)
        .max(1);
    let pbx: SocketAddr = common::PBX.parse().expect("addr");
    let mut core = common::core();
    let t0 = Instant::now();
    let step = Duration::from_micros(100);
    // 32 virtual seconds to fill the tables, then the counted calls.
    let warm = 320_000;
    let mut now = t0;
    let (mut invite_ns, mut ack_ns, mut whole_ns) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for n in 0..warm + calls {
        if n == warm {
            (invite_ns, ack_ns, whole_ns) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        }
        // Call 2n is refused, call 2n + 1 is whole.
        let i = 2 * n;
        now += step;
        core.set_memory_pressure(true);
        let (call_id, invite) = common::invite(i);
        // No timers are run here: what expires is the whole calls' (whole_call runs them),
        // a refusal leaves nothing behind.
        let start = Instant::now();
        core.clear_transmits();
        core.handle_datagram(now, pbx, invite.as_bytes());
        invite_ns += start.elapsed();
        assert!(
            !common::lines_sent_to(&core, pbx, "SIP/2.0 503").is_empty(),
            "the INVITE was answered 503"
        );
        let to = common::lines_sent_to(&core, pbx, "To:");
        let ack = format!(
            "ACK sip:2125551234@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-{i}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@127.0.0.2>;tag=a{i}\r\n\
             {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        );
        let start = Instant::now();
        core.clear_transmits();
        core.handle_datagram(now, pbx, ack.as_bytes());
        ack_ns += start.elapsed();
        assert_eq!(
            core.transmits().count(),
            0,
            "the ACK to our 503 goes nowhere"
        );
        core.set_memory_pressure(false);
        whole_ns += common::whole_call(&mut core, now, i + 1);
    }
    let s = core.stats_snapshot();
    assert_eq!(s.calls_created, warm + calls, "every other call was routed");
    let per = |d: Duration| d.as_nanos() as f64 / calls as f64;
    println!(
        "refusal: {calls} calls refused and {calls} whole, alternating; core ns per call: \
         refused {:.0} (INVITE -> 503 {:.0}, ACK {:.0}), whole {:.0}; a refusal is {:.1}% of a \
         whole call",
        per(invite_ns + ack_ns),
        per(invite_ns),
        per(ack_ns),
        per(whole_ns),
        100.0 * per(invite_ns + ack_ns) / per(whole_ns),
    );
}
