//! The zero-copy scanner: finds the start line and the spans of the headers routing and
//! transaction matching need, in one pass, without allocating. Everything else is relayed
//! untouched.

use super::header::Header;
use super::via::Via;
use super::{Method, Span};
use crate::limits;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: Method,
        /// The method token as written (needed for `Method::Other`).
        method_span: Span,
        /// The Request-URI token.
        uri: Span,
    },
    Response {
        code: u16,
        reason: Span,
    },
}

/// A From or To header: the URI inside it and its tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NameAddr {
    /// Index into `Message::headers`, or `usize::MAX` if the header is absent.
    pub header: usize,
    pub uri: Span,
    pub tag: Option<Span>,
}

/// Where a message was rejected and what a proxy should do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanError {
    /// Not recognisable as a SIP message, or a response that cannot be parsed: drop silently.
    Drop(&'static str),
    /// A request that must be answered with `status` (400, 505, 501, 513) and `reason`
    /// (used as reason phrase / Warning text). The `Message` holds whatever headers were
    /// found so a response can be built from them.
    Reject { status: u16, reason: &'static str },
}

/// The result of scanning one datagram. Plain data, reusable: `scan` overwrites it.
#[derive(Clone, Debug)]
pub struct Message {
    pub start: StartLine,
    /// The start line without its CRLF.
    pub start_line: Span,
    /// Every header line in order, up to limits::HEADERS_MAX.
    pub headers: [Header; limits::HEADERS_MAX],
    pub header_count: usize,
    /// Offset of the empty line that ends the header section (the CRLF before the body).
    pub headers_end: u32,
    /// The body, framed by Content-Length; when Content-Length is absent (UDP, RFC 2543),
    /// the rest of the datagram. Bytes after the body are ignored.
    pub body: Span,
    pub content_length: Option<u32>,
    /// The first value of the first Via header.
    pub top_via: Via,
    /// Index of the header line holding the top Via.
    pub top_via_header: usize,
    /// Whether the top Via header line holds more than one via-parm (comma list).
    pub top_via_shares_line: bool,
    /// The span to delete to remove the top via-parm when it shares its line: the value
    /// plus the following comma and LWS.
    pub top_via_removal: Span,
    /// Total via-parms across all Via lines.
    pub via_count: usize,
    /// The second via-parm (where a response goes after we pop ours), if any.
    pub second_via: Option<Via>,
    pub call_id: Span,
    pub cseq: u32,
    pub cseq_method: Method,
    /// The CSeq method token as written.
    pub cseq_method_span: Span,
    pub from: NameAddr,
    pub to: NameAddr,
    /// Parsed value and header index.
    pub max_forwards: Option<(u32, usize)>,
    /// The first Route value (a name-addr), its header index, and the span that removes it
    /// (the whole line when it is alone on it, else the value plus comma and LWS).
    pub route_first: Option<RouteValue>,
    /// The second Route value, if any (on the same line or a later Route line).
    pub route_second: Option<Span>,
    pub record_route_count: usize,
    /// First Contact value.
    pub contact: Option<Span>,
    pub content_type: Option<Span>,
    /// Index of the first Proxy-Require header, if any.
    pub proxy_require: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteValue {
    pub value: Span,
    pub header: usize,
    pub removal: Span,
}

impl Default for Message {
    fn default() -> Self {
        Message {
            start: StartLine::Response {
                code: 0,
                reason: Span::EMPTY,
            },
            start_line: Span::EMPTY,
            headers: [Header::EMPTY; limits::HEADERS_MAX],
            header_count: 0,
            headers_end: 0,
            body: Span::EMPTY,
            content_length: None,
            top_via: Via::EMPTY,
            top_via_header: usize::MAX,
            top_via_shares_line: false,
            top_via_removal: Span::EMPTY,
            via_count: 0,
            second_via: None,
            call_id: Span::EMPTY,
            cseq: 0,
            cseq_method: Method::Other,
            cseq_method_span: Span::EMPTY,
            from: NameAddr {
                header: usize::MAX,
                ..NameAddr::default()
            },
            to: NameAddr {
                header: usize::MAX,
                ..NameAddr::default()
            },
            max_forwards: None,
            route_first: None,
            route_second: None,
            record_route_count: 0,
            contact: None,
            content_type: None,
            proxy_require: None,
        }
    }
}

impl Message {
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn headers(&self) -> &[Header] {
        self.headers.get(..self.header_count).unwrap_or(&[])
    }
}

/// Scan `buf` into `out`. On error `out` holds what was found before the error (enough to
/// build a response when the error is `Reject`).
pub fn scan(buf: &[u8], out: &mut Message) -> Result<(), ScanError> {
    let _ = (buf, out);
    unimplemented!("scanner helper implements this")
}

/// The Call-ID value of a datagram, found as fast as possible (used by the shard shell to
/// pick the owning shard before a full scan). `None` if there is none.
pub fn peek_call_id(buf: &[u8]) -> Option<Span> {
    let _ = buf;
    unimplemented!("scanner helper implements this")
}
