//! Message rewriting by splicing: a forwarded message is the received bytes with a few
//! edits (insert our Via, Record-Route; fill received/rport; decrement Max-Forwards; pop a
//! Route; replace the Request-URI; drop our Via from a response). Untouched spans are copied.

use super::scan::Message;
use super::Span;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

#[derive(Clone, Copy, Debug)]
struct Edit {
    start: u32,
    end: u32,
    data: (u32, u32),
}

/// A set of non-overlapping edits against one buffer, with their replacement bytes kept in a
/// reusable scratch buffer.
#[derive(Default)]
pub struct Splice {
    edits: Vec<Edit>,
    scratch: Vec<u8>,
}

impl Splice {
    pub fn clear(&mut self) {
        self.edits.clear();
        self.scratch.clear();
    }

    /// Replace `span` with whatever `write` appends to the scratch buffer.
    pub fn replace_with(&mut self, span: Span, write: impl FnOnce(&mut Vec<u8>)) {
        let from = self.scratch.len();
        write(&mut self.scratch);
        self.edits.push(Edit {
            start: span.start,
            end: span.end,
            data: (from as u32, self.scratch.len() as u32),
        });
    }

    pub fn replace(&mut self, span: Span, bytes: &[u8]) {
        self.replace_with(span, |s| s.extend_from_slice(bytes));
    }

    pub fn insert(&mut self, at: u32, bytes: &[u8]) {
        self.replace(Span { start: at, end: at }, bytes);
    }

    pub fn insert_with(&mut self, at: u32, write: impl FnOnce(&mut Vec<u8>)) {
        self.replace_with(Span { start: at, end: at }, write);
    }

    pub fn delete(&mut self, span: Span) {
        self.replace(span, b"");
    }

    /// Append `buf[..end]` with the edits applied to `out`; returns the range written.
    /// Edits are applied in offset order (insertions at one offset in the order given);
    /// an edit overlapping an earlier one is a bug in the caller and is skipped.
    pub fn apply(&mut self, buf: &[u8], end: usize, out: &mut Vec<u8>) -> Range<usize> {
        let begin = out.len();
        self.edits.sort_by_key(|e| (e.start, e.end));
        let mut pos = 0usize;
        for e in &self.edits {
            let (s, t) = (e.start as usize, e.end as usize);
            if s < pos || t > end {
                debug_assert!(false, "overlapping or out-of-range edit");
                continue;
            }
            out.extend_from_slice(buf.get(pos..s).unwrap_or(&[]));
            out.extend_from_slice(
                self.scratch
                    .get(e.data.0 as usize..e.data.1 as usize)
                    .unwrap_or(&[]),
            );
            pos = t;
        }
        out.extend_from_slice(buf.get(pos..end).unwrap_or(&[]));
        begin..out.len()
    }
}

/// Write a host for a URI or Via: IPv6 in brackets.
pub fn write_host(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let _ = write!(out, "{v4}");
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "[{v6}]");
        }
    }
}

pub fn write_hostport(out: &mut Vec<u8>, addr: SocketAddr) {
    write_host(out, addr.ip());
    let _ = write!(out, ":{}", addr.port());
}

/// What a forwarded request changes.
pub struct RequestEdits<'a> {
    /// Our complete Via header line (with CRLF), inserted first.
    pub via_line: &'a [u8],
    /// Our Record-Route header line (with CRLF), for dialog-creating requests.
    pub record_route_line: Option<&'a [u8]>,
    /// A new Request-URI.
    pub new_uri: Option<&'a [u8]>,
    /// The packet's source, for received/rport on the sender's Via (RFC 3261 18.2.1, RFC 3581).
    pub source: SocketAddr,
    /// Remove the first Route value (it points at us).
    pub pop_route: bool,
    /// Other spans to replace (numbers in From / P-Asserted-Identity) and to delete.
    pub replace: &'a [(Span, &'a [u8])],
    pub delete: &'a [Span],
}

/// Build a forwarded request into `out`; returns its range.
pub fn forward_request(
    buf: &[u8],
    msg: &Message,
    edits: &RequestEdits<'_>,
    splice: &mut Splice,
    out: &mut Vec<u8>,
) -> Range<usize> {
    splice.clear();
    if let (Some(uri), super::scan::StartLine::Request { uri: span, .. }) =
        (edits.new_uri, msg.start)
    {
        splice.replace(span, uri);
    }
    // Our Via (and Record-Route) go right after the start line: above every other Via and
    // every other Record-Route, as RFC 3261 16.6 steps 4 and 8 require.
    let first_header = msg
        .headers()
        .first()
        .map_or(msg.start_line.end + 2, |h| h.line.start);
    splice.insert(first_header, edits.via_line);
    if let Some(rr) = edits.record_route_line {
        splice.insert(first_header, rr);
    }
    received_rport(buf, msg, edits.source, splice);
    match msg.max_forwards {
        Some((n, idx)) => {
            if let Some(h) = msg.headers.get(idx) {
                splice.replace_with(h.value, |s| {
                    let _ = write!(s, "{}", n.saturating_sub(1));
                });
            }
        }
        None => splice.insert(first_header, b"Max-Forwards: 70\r\n"),
    }
    if edits.pop_route {
        if let Some(r) = msg.route_first {
            splice.delete(r.removal);
        }
    }
    for (span, bytes) in edits.replace {
        splice.replace(*span, bytes);
    }
    for span in edits.delete {
        splice.delete(*span);
    }
    if msg.content_length.is_none() {
        let len = msg.body.len();
        splice.insert_with(msg.headers_end, |s| {
            let _ = write!(s, "Content-Length: {len}\r\n");
        });
    }
    splice.apply(buf, msg.body.end as usize, out)
}

/// RFC 3261 18.2.1: add `received` when the sent-by host is not the packet's source address;
/// RFC 3581: fill an empty `rport` with the source port (and then always add `received`).
fn received_rport(buf: &[u8], msg: &Message, source: SocketAddr, splice: &mut Splice) {
    let via = &msg.top_via;
    if via.received.is_some() {
        return;
    }
    let rport_empty = match via.rport {
        super::via::Rport::Empty(span) => Some(span),
        _ => None,
    };
    let sent_by_is_source = super::uri::host_ip(buf, via.host)
        .is_some_and(|ip| ip == source.ip() || ip.to_canonical() == source.ip().to_canonical());
    if let Some(span) = rport_empty {
        splice.replace_with(span, |s| {
            let _ = write!(s, "rport={}", source.port());
        });
    } else if sent_by_is_source {
        return;
    }
    splice.insert_with(via.params_end, |s| {
        s.extend_from_slice(b";received=");
        match source.ip().to_canonical() {
            IpAddr::V4(v4) => {
                let _ = write!(s, "{v4}");
            }
            IpAddr::V6(v6) => {
                let _ = write!(s, "{v6}");
            }
        }
    });
}

/// What a relayed response changes besides losing our Via.
#[derive(Default)]
pub struct ResponseEdits<'a> {
    /// A translated status code (the reason phrase becomes the standard one).
    pub status: Option<u16>,
    pub replace: &'a [(Span, &'a [u8])],
    /// Header lines (CRLF-ended) to add.
    pub insert: &'a [u8],
    /// Header lines to remove (whole `Header::line` spans).
    pub delete: &'a [Span],
    /// RFC 7339 feedback (`super::oc`) for the next hop's Via, if it asks for it; empty:
    /// none.
    pub oc: &'a [u8],
}

/// Build a forwarded response (our top Via removed) into `out`; returns its range.
pub fn forward_response(
    buf: &[u8],
    msg: &Message,
    edits: &ResponseEdits<'_>,
    splice: &mut Splice,
    out: &mut Vec<u8>,
) -> Range<usize> {
    splice.clear();
    if let Some(code) = edits.status {
        splice.replace_with(msg.start_line, |s| {
            let _ = write!(s, "SIP/2.0 {code} {}", super::response::reason_phrase(code));
        });
    }
    for (span, bytes) in edits.replace {
        splice.replace(*span, bytes);
    }
    if !edits.insert.is_empty() {
        splice.insert(msg.headers_end, edits.insert);
    }
    for span in edits.delete {
        splice.delete(*span);
    }
    let client_via = msg.second_via.filter(|_| !edits.oc.is_empty());
    if let Some(oc) = client_via.and_then(|v| super::oc::via_edits(&v, edits.oc)) {
        for (span, bytes) in oc.into_iter().flatten() {
            splice.replace(span, bytes);
        }
    }
    if msg.top_via_shares_line {
        splice.delete(msg.top_via_removal);
    } else if let Some(h) = msg.headers.get(msg.top_via_header) {
        splice.delete(h.line);
    }
    splice.apply(buf, msg.body.end as usize, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_in_offset_order() {
        let buf = b"0123456789";
        let mut s = Splice::default();
        s.replace(Span::new(7, 8), b"X");
        s.insert(2, b"ab");
        s.delete(Span::new(4, 6));
        s.insert(2, b"cd");
        let mut out = b"pre".to_vec();
        let r = s.apply(buf, 9, &mut out);
        assert_eq!(&out[r], b"01abcd236X8");
    }
}
