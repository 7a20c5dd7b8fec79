//! The whole sans-IO core with the trunks of tests/common CONFIG. The first byte picks the
//! source (a trunk or an unknown address), whether to run the timers and whether the core is
//! under memory pressure (every new call shed with 503); the rest is the datagram. With bit 4
//! a call from the PBX is placed first and the datagram comes from the gateway with every
//! `@BR` replaced by the branch of junction's Via on the forwarded INVITE, so that fuzzed
//! responses reach that client transaction and their RFC 7339 feedback is read; a second
//! call then goes out under whatever the feedback set. Invariants: no panic; every datagram goes to the source's IP or a trunk's;
//! toward an unknown IP only 4xx/5xx responses, never more bytes in total than it sent (no
//! amplification); nothing larger than limits::MESSAGE_BYTES_MAX; every datagram sent
//! re-scans, except the answer to a request the scanner rejected (known F2 in
//! tests/mutation.rs: RFC 3261 8.2.6 copies the offending header into it); a forwarded
//! request keeps the Call-ID, CSeq and body of its input (Content-Length framing), has one
//! more Via, ours on top and the input's top branch second.
#![no_main]

use junction::config;
use junction::limits;
use junction::routing::RoutingTable;
use junction::sip::proxy::{Core, CoreConfig};
use junction::sip::scan::{self, Message, ScanError};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[server]
cores = 1
listen = "udp:127.0.0.1:5060"

[[trunk]]
name = "pbx"
peers = ["127.0.0.2"]
send_to = "127.0.0.2:5060"

[[trunk]]
name = "gw"
peers = ["127.0.0.3"]
send_to = "127.0.0.3:5060"

[[route]]
name = "pbx-numbers"
prefixes = ["1"]
trunks = ["pbx"]

[[route]]
name = "everything-else"
prefixes = [""]
trunks = ["gw"]
"#;

/// The call placed first with selector bit 4, and the one after the fuzzed response.
const FIRST_CALL: &[u8] = b"INVITE sip:2125551234@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-fuzz-1;rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:100@127.0.0.2>;tag=f1\r\nTo: <sip:2125551234@127.0.0.1>\r\n\
Call-ID: fuzz-1@pbx\r\nCSeq: 1 INVITE\r\nContact: <sip:100@127.0.0.2:5060>\r\n\
Content-Length: 0\r\n\r\n";
const SECOND_CALL: &[u8] = b"INVITE sip:2125551234@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-fuzz-2;rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:100@127.0.0.2>;tag=f2\r\nTo: <sip:2125551234@127.0.0.1>\r\n\
Call-ID: fuzz-2@pbx\r\nCSeq: 1 INVITE\r\nContact: <sip:100@127.0.0.2:5060>\r\n\
Content-Length: 0\r\n\r\n";

/// The branch of the top Via of the first datagram `core` sent to `to`.
fn sent_branch(core: &Core, to: SocketAddr) -> Option<Vec<u8>> {
    let (_, out) = core.transmits().find(|(t, _)| *t == to)?;
    let mut m = Box::<Message>::default();
    scan::scan(out, &mut m).ok()?;
    Some(m.top_via.branch?.get(out).to_vec())
}

/// `bytes` with every `@BR` replaced by `branch`.
fn with_branch(bytes: &[u8], branch: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + branch.len());
    let mut rest = bytes;
    while let Some(i) = rest.windows(3).position(|w| w == b"@BR") {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(branch);
        rest = &rest[i + 3..];
    }
    out.extend_from_slice(rest);
    out
}

fn routing() -> Arc<RoutingTable> {
    static R: OnceLock<Arc<RoutingTable>> = OnceLock::new();
    R.get_or_init(|| {
        let cfg = config::parse(CONFIG, "fuzz.toml").expect("config");
        Arc::new(RoutingTable::compile(&cfg).expect("routing"))
    })
    .clone()
}

fn trunk(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip == IpAddr::from([127, 0, 0, 2]) || ip == IpAddr::from([127, 0, 0, 3])
}

/// What went toward the unknown source so far, against what it sent.
struct Budget {
    received: usize,
    sent: usize,
}

fn check(core: &mut Core, from: SocketAddr, input: Option<&[u8]>, budget: &mut Budget) {
    let mut im = Box::<Message>::default();
    let in_scan = input.map(|i| scan::scan(i, &mut im));
    let in_ok = matches!(in_scan, Some(Ok(()))) && im.is_request();
    let in_rejected = matches!(in_scan, Some(Err(ScanError::Reject { .. })));
    for (to, out) in core.transmits() {
        let status = out
            .strip_prefix(b"SIP/2.0 ")
            .and_then(|r| std::str::from_utf8(r.get(..3)?).ok()?.parse::<u16>().ok());
        let same = to.ip().to_canonical() == from.ip().to_canonical();
        assert!(
            trunk(to.ip()) || same,
            "sent to {to}, neither source {from} nor a trunk"
        );
        assert!(
            out.len() <= limits::MESSAGE_BYTES_MAX,
            "{} bytes sent, over MESSAGE_BYTES_MAX",
            out.len()
        );
        if !trunk(to.ip()) {
            assert!(
                status.is_some_and(|s| (400..600).contains(&s)),
                "not a 4xx/5xx toward unknown {to}"
            );
            budget.sent += out.len();
            assert!(
                budget.sent <= budget.received,
                "amplification: {} bytes toward {to}, which sent {}",
                budget.sent,
                budget.received
            );
        }
        let mut om = Box::<Message>::default();
        if let Err(e) = scan::scan(out, &mut om) {
            let answer_to_rejected = in_rejected && same && status.is_some();
            assert!(
                answer_to_rejected,
                "sent datagram does not re-scan ({e:?}):\n{}",
                String::from_utf8_lossy(out)
            );
            continue;
        }
        if let (true, Some(inp), None) = (in_ok, input, status) {
            assert_eq!(om.call_id.get(out), im.call_id.get(inp), "Call-ID changed");
            assert_eq!(om.cseq, im.cseq, "CSeq changed");
            if om.cseq_method == im.cseq_method {
                assert_eq!(om.body.get(out), im.body.get(inp), "body changed");
                assert_eq!(om.via_count, im.via_count + 1, "not one more Via");
                let top = om.top_via.branch.map_or(&[][..], |b| b.get(out));
                assert!(top.starts_with(b"z9hG4bK"), "our branch is not on top");
                let second = om.second_via.and_then(|v| v.branch).map(|b| b.get(out));
                assert_eq!(
                    second,
                    im.top_via.branch.map(|b| b.get(inp)),
                    "input's top branch not second"
                );
            }
        }
    }
    core.clear_transmits();
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let from: SocketAddr = match sel & 3 {
        0 | 1 => "127.0.0.2:5060",
        2 => "127.0.0.3:5060",
        _ => "127.0.0.9:5070",
    }
    .parse()
    .expect("literal");
    let mut core = Core::new(
        CoreConfig {
            shard: 0,
            shards: 1,
            advertise: "127.0.0.1:5060".parse().expect("literal"),
            shard_ports: None,
            wall: junction::sip::oc::WallAnchor::now(),
        },
        routing(),
    );
    let mut now = Instant::now();
    let mut budget = Budget {
        received: bytes.len(),
        sent: 0,
    };
    core.set_memory_pressure(sel & 8 != 0);
    let answer = sel & 16 != 0;
    let response;
    let (from, bytes) = if answer {
        let pbx: SocketAddr = "127.0.0.2:5060".parse().expect("literal");
        let gw: SocketAddr = "127.0.0.3:5060".parse().expect("literal");
        core.handle_datagram(now, pbx, FIRST_CALL);
        let branch = sent_branch(&core, gw).unwrap_or_default();
        check(&mut core, pbx, Some(FIRST_CALL), &mut budget);
        response = with_branch(bytes, &branch);
        (gw, &response[..])
    } else {
        (from, bytes)
    };
    core.handle_datagram(now, from, bytes);
    check(&mut core, from, Some(bytes), &mut budget);
    if answer {
        let pbx: SocketAddr = "127.0.0.2:5060".parse().expect("literal");
        core.handle_datagram(now, pbx, SECOND_CALL);
        check(&mut core, pbx, Some(SECOND_CALL), &mut budget);
    }
    if sel & 4 != 0 {
        let end = now + Duration::from_secs(70);
        while let Some(d) = core.next_deadline() {
            if d > end {
                break;
            }
            now = now.max(d);
            core.handle_timeout(now);
            check(&mut core, from, None, &mut budget);
        }
    }
});
