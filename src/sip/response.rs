//! Messages junction writes itself: responses to requests (RFC 3261 8.2.6, 16.7), and the
//! ACK (17.1.1.3) and CANCEL (9.1) a proxy sends downstream, derived from the request it
//! forwarded.

use super::header::HeaderName;
use super::scan::{Message, StartLine};
use super::Span;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

/// The standard reason phrase for the codes junction generates.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        504 => "Server Time-out",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Unknown",
    }
}

fn line<'a>(buf: &'a [u8], msg: &Message, idx: usize) -> &'a [u8] {
    msg.headers.get(idx).map_or(&[][..], |h| h.line.get(buf))
}

/// Write a response to the request `msg` (scanned from `buf`) into `out`.
/// Via, From, Call-ID and CSeq are copied; To too, with `;tag=to_tag` appended when it has
/// no tag and the response is not a 100. `extra` holds complete header lines (CRLF-ended).
/// Header number `skip` is left out (our own Via when answering from a forwarded copy;
/// `usize::MAX` for none). `oc`, when not empty, is RFC 7339 feedback (`super::oc`) written
/// into the client's Via if that Via asks for it. `source`, for a request as received
/// (`skip` = `usize::MAX`), is where it came from: its top Via gets `received` and `rport`
/// as on a relayed response (RFC 3261 18.2.1, RFC 3581 4).
#[allow(clippy::too_many_arguments)]
pub fn local_response(
    buf: &[u8],
    msg: &Message,
    code: u16,
    to_tag: &[u8],
    extra: &[u8],
    skip: usize,
    oc: &[u8],
    source: Option<SocketAddr>,
    out: &mut Vec<u8>,
) -> Range<usize> {
    let begin = out.len();
    let oc_edits = client_via(msg, skip)
        .filter(|_| !oc.is_empty())
        .and_then(|v| super::oc::via_edits(v, oc));
    // received / rport, written on the stack (no allocation per response).
    let mut rport_text = [0u8; 16];
    let mut received_text = [0u8; 64];
    let mut edits: [Option<(Span, &[u8])>; 6] = [None; 6];
    let mut n = 0;
    for e in oc_edits.iter().flatten().flatten() {
        if let Some(slot) = edits.get_mut(n) {
            *slot = Some(*e);
            n += 1;
        }
    }
    let source = source.filter(|_| skip == usize::MAX);
    if let Some((rport, received)) = source
        .and_then(|s| received_rport(buf, &msg.top_via, s, &mut rport_text, &mut received_text))
    {
        for e in [rport, received].into_iter().flatten() {
            if let Some(slot) = edits.get_mut(n) {
                *slot = Some(e);
                n += 1;
            }
        }
    }
    edits.sort_by_key(|e| e.map_or((u32::MAX, u32::MAX), |(s, _)| (s.start, s.end)));
    let top_via = source.map(|_| msg.top_via_header);
    let _ = write!(out, "SIP/2.0 {} {}\r\n", code, reason_phrase(code));
    for (i, h) in msg.headers().iter().enumerate() {
        if i == skip {
            continue;
        }
        match h.name {
            HeaderName::Via if oc_edits.is_some() || top_via == Some(i) => {
                super::oc::write_edited(buf, h.line, &edits, out);
            }
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                out.extend_from_slice(h.line.get(buf));
            }
            HeaderName::To => {
                if msg.to.tag.is_none() && code > 100 {
                    out.extend_from_slice(
                        buf.get(h.line.start as usize..h.value.end as usize)
                            .unwrap_or(&[]),
                    );
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(to_tag);
                    out.extend_from_slice(b"\r\n");
                } else {
                    out.extend_from_slice(h.line.get(buf));
                }
            }
            _ => {}
        }
    }
    out.extend_from_slice(extra);
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    begin..out.len()
}

/// The edits RFC 3261 18.2.1 and RFC 3581 4 make to the top Via of a request received from
/// `source`: an empty `rport` gets the source port, and `received` is added when the
/// sent-by is not the source address (always when rport was asked for). Bytes are written
/// into the two buffers given. `None`: nothing to add.
#[allow(clippy::type_complexity)]
fn received_rport<'a>(
    buf: &[u8],
    via: &super::via::Via,
    source: SocketAddr,
    rport_text: &'a mut [u8; 16],
    received_text: &'a mut [u8; 64],
) -> Option<(Option<(Span, &'a [u8])>, Option<(Span, &'a [u8])>)> {
    if via.received.is_some() || via.params_end == 0 {
        return None;
    }
    let rport_empty = match via.rport {
        super::via::Rport::Empty(span) => Some(span),
        _ => None,
    };
    let sent_by_is_source = super::uri::host_ip(buf, via.host)
        .is_some_and(|ip| ip.to_canonical() == source.ip().to_canonical());
    if rport_empty.is_none() && sent_by_is_source {
        return None;
    }
    let rport = match rport_empty {
        Some(span) => {
            let mut c = std::io::Cursor::new(&mut rport_text[..]);
            let _ = write!(c, "rport={}", source.port());
            let len = c.position() as usize;
            Some((span, rport_text.get(..len).unwrap_or(&[])))
        }
        None => None,
    };
    let mut c = std::io::Cursor::new(&mut received_text[..]);
    let _ = match source.ip().to_canonical() {
        IpAddr::V4(v4) => write!(c, ";received={v4}"),
        IpAddr::V6(v6) => write!(c, ";received={v6}"),
    };
    let len = c.position() as usize;
    let at = Span {
        start: via.params_end,
        end: via.params_end,
    };
    Some((rport, Some((at, received_text.get(..len).unwrap_or(&[])))))
}

/// The Via of the client a response to `msg` goes to: the top one, or the second when
/// header `skip` (our own Via, `msg` being our forwarded copy) is left out.
pub fn client_via(msg: &Message, skip: usize) -> Option<&super::via::Via> {
    if skip == usize::MAX {
        Some(&msg.top_via)
    } else {
        msg.second_via.as_ref()
    }
}

/// Which request to derive from our forwarded INVITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Derived {
    /// ACK for a non-2xx final response; carries the response's To (with its tag).
    Ack,
    Cancel,
}

/// Write the ACK or CANCEL for the INVITE we forwarded (`req`, scanned from `req_buf`).
/// For an ACK, `response_to` is the To header line of the response being acknowledged.
pub fn derived_request(
    req_buf: &[u8],
    req: &Message,
    kind: Derived,
    response_to: &[u8],
    out: &mut Vec<u8>,
) -> Range<usize> {
    let begin = out.len();
    let method: &[u8] = match kind {
        Derived::Ack => b"ACK",
        Derived::Cancel => b"CANCEL",
    };
    let uri = match req.start {
        StartLine::Request { uri, .. } => uri.get(req_buf),
        StartLine::Response { .. } => &[],
    };
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(uri);
    out.extend_from_slice(b" SIP/2.0\r\n");
    // A single Via: the top Via of the request (ours), whole line if alone on it.
    if let Some(h) = req.headers.get(req.top_via_header) {
        if req.top_via_shares_line {
            out.extend_from_slice(b"Via: ");
            out.extend_from_slice(req.top_via.value.get(req_buf));
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(h.line.get(req_buf));
        }
    }
    for h in req.headers() {
        if h.name == HeaderName::Route {
            out.extend_from_slice(h.line.get(req_buf));
        }
    }
    out.extend_from_slice(line(req_buf, req, req.from.header));
    match kind {
        Derived::Ack if !response_to.is_empty() => out.extend_from_slice(response_to),
        _ => out.extend_from_slice(line(req_buf, req, req.to.header)),
    }
    for h in req.headers() {
        if h.name == HeaderName::CallId {
            out.extend_from_slice(h.line.get(req_buf));
        }
    }
    let _ = write!(out, "CSeq: {} ", req.cseq);
    out.extend_from_slice(method);
    out.extend_from_slice(b"\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    begin..out.len()
}
