//! Text shared by the UAC and UAS: reason phrases, the SDP offer/answer, identifiers, and the
//! response built straight from a request (for requests answered without call state).

use crate::sip::msg::{Hdr, Msg};
use crate::sip::write::Put;
use crate::ua::out::Out;
use std::net::{IpAddr, SocketAddr};

pub fn reason(code: u16) -> &'static [u8] {
    match code {
        100 => b"Trying",
        180 => b"Ringing",
        183 => b"Session Progress",
        200 => b"OK",
        404 => b"Not Found",
        408 => b"Request Timeout",
        480 => b"Temporarily Unavailable",
        481 => b"Call/Transaction Does Not Exist",
        486 => b"Busy Here",
        487 => b"Request Terminated",
        488 => b"Not Acceptable Here",
        500 => b"Server Internal Error",
        501 => b"Not Implemented",
        503 => b"Service Unavailable",
        603 => b"Decline",
        _ => b"Response",
    }
}

/// A minimal audio SDP for `ip`.
pub fn sdp(ip: IpAddr) -> Vec<u8> {
    let mut v = Vec::new();
    let fam: &[u8] = if ip.is_ipv4() { b"IP4 " } else { b"IP6 " };
    v.put(b"v=0\r\no=junction-load 1 1 IN ");
    v.put(fam);
    put_bare_ip(&mut v, ip);
    v.put(b"\r\ns=-\r\nc=IN ");
    v.put(fam);
    put_bare_ip(&mut v, ip);
    v.put(b"\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n");
    v
}

fn put_bare_ip(v: &mut Vec<u8>, ip: IpAddr) {
    use std::io::Write;
    let _ = write!(v, "{ip}");
}

/// FNV-1a, 64 bit: the key of a Call-ID in the UAS table.
pub fn hash64(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in b {
        h ^= u64::from(c);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A response to `req` built from the request alone: every Via, From, To (with `to_tag` added
/// if the To has none), Call-ID and CSeq copied, no body.
pub fn response_from(
    out: &mut Out,
    req: &Msg,
    code: u16,
    to_tag: &[u8],
    extra: &[u8],
    sock: u16,
    dest: SocketAddr,
) {
    let start = out.begin();
    let b = &mut out.buf;
    b.put(b"SIP/2.0 ");
    b.put_u64(u64::from(code));
    b.put(b" ");
    b.put(reason(code));
    b.put(b"\r\n");
    for l in req.headers() {
        let name = req.get(l.name);
        match crate::sip::msg::classify(name) {
            Hdr::Via | Hdr::From | Hdr::CallId | Hdr::CSeq => {
                b.put(req.get(l.line));
                b.put(b"\r\n");
            }
            Hdr::To => {
                b.put(req.get(l.line));
                if req.to_tag.is_empty() && !to_tag.is_empty() {
                    b.put(b";tag=");
                    b.put(to_tag);
                }
                b.put(b"\r\n");
            }
            _ => {}
        }
    }
    b.put(extra);
    b.put(b"Content-Length: 0\r\n\r\n");
    out.finish(start, sock, dest);
}
