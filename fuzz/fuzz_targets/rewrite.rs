//! The rewriter: a request the scanner accepts, forwarded with our Via (and Record-Route,
//! Max-Forwards, received/rport, Content-Length), re-scans to the same Call-ID and CSeq,
//! one more Via on top whose branch is ours, and the old top Via's branch second.
#![no_main]

use junction::limits;
use junction::sip::rewrite::{self, RequestEdits, Splice};
use junction::sip::scan::{self, Message};
use libfuzzer_sys::fuzz_target;

const VIA: &[u8] = b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKjnfuzz.0.0\r\n";
const RR: &[u8] = b"Record-Route: <sip:127.0.0.1:5060;lr>\r\n";

fuzz_target!(|data: &[u8]| {
    let mut m = Box::<Message>::default();
    if scan::scan(data, &mut m).is_err() || !m.is_request() {
        return;
    }
    // Room for our edits within the scanner's own limits.
    if m.via_count >= limits::VIAS_MAX || m.header_count + 4 > limits::HEADERS_MAX {
        return;
    }
    let source = "127.0.0.2:5062".parse().expect("literal");
    let edits = RequestEdits {
        via_line: VIA,
        record_route_line: Some(RR),
        new_uri: Some(b"sip:4420@127.0.0.3:5060"),
        source,
        pop_route: false,
        replace: &[],
        delete: &[],
    };
    let mut out = Vec::new();
    let mut splice = Splice::default();
    let r = rewrite::forward_request(data, &m, &edits, &mut splice, &mut out);
    let fwd = &out[r];
    assert!(fwd.len() <= data.len() + limits::REWRITE_GROWTH_BYTES_MAX);
    let mut f = Box::<Message>::default();
    if let Err(e) = scan::scan(fwd, &mut f) {
        panic!(
            "forwarded request does not re-scan: {e:?}\n{}",
            String::from_utf8_lossy(fwd)
        );
    }
    assert_eq!(f.call_id.get(fwd), m.call_id.get(data), "Call-ID");
    assert_eq!((f.cseq, f.cseq_method), (m.cseq, m.cseq_method), "CSeq");
    assert_eq!(f.via_count, m.via_count + 1, "Vias");
    assert_eq!(
        f.top_via.branch.map(|b| b.get(fwd)),
        Some(&b"z9hG4bKjnfuzz.0.0"[..])
    );
    let second = f.second_via.and_then(|v| v.branch).map(|b| b.get(fwd));
    assert_eq!(
        second,
        m.top_via.branch.map(|b| b.get(data)),
        "old top branch second"
    );
    assert_eq!(f.body.get(fwd), m.body.get(data), "body");
});
