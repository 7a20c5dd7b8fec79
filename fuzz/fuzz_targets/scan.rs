//! The scanner: no panic; every span inside the buffer; Content-Length framing holds;
//! `peek_call_id` agrees with `scan`'s Call-ID on accepted messages.
#![no_main]

use junction::sip::scan::{self, Message};
use junction::sip::Span;
use libfuzzer_sys::fuzz_target;

fn inside(s: Span, len: usize, what: &str) {
    assert!(
        s.start <= s.end && s.end as usize <= len,
        "{what} {s:?} outside {len}"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut m = Box::<Message>::default();
    let r = scan::scan(data, &mut m);
    let len = data.len();
    inside(m.start_line, len, "start line");
    for h in m.headers() {
        inside(h.line, len, "header line");
        inside(h.value, len, "header value");
    }
    if r.is_err() {
        return;
    }
    inside(m.call_id, len, "Call-ID");
    inside(m.body, len, "body");
    assert!(m.headers_end as usize <= len);
    assert!(m.body.start >= m.headers_end);
    if let Some(n) = m.content_length {
        assert_eq!(
            m.body.len(),
            n as usize,
            "body not framed by Content-Length"
        );
    } else {
        assert_eq!(
            m.body.end as usize, len,
            "no Content-Length: the rest of the datagram"
        );
    }
    let peek = scan::peek_call_id(data).map(|s| s.get(data));
    assert_eq!(
        peek,
        Some(m.call_id.get(data)),
        "peek_call_id disagrees with scan"
    );
});
