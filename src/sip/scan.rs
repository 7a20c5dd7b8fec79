//! The zero-copy scanner: finds the start line and the spans of the headers routing and
//! transaction matching need, in one pass, without allocating. Everything else is relayed
//! untouched.

use super::header::{self, Header, HeaderName};
use super::uri::{self, lex};
use super::via::{self, Via, MAGIC_COOKIE};
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
///
/// One pass: the start line, then each header line (memchr for the line ends, one pass over
/// the name to its colon, a name table), dispatching the headers the core needs; then the mandatory-header checks
/// and Content-Length framing. A semantic problem in a request is noted and scanning goes
/// on, so the `Message` is as complete as possible; the first problem is returned at the
/// end. Headers past `out.header_count` in `out.headers` are stale and meaningless.
pub fn scan(buf: &[u8], out: &mut Message) -> Result<(), ScanError> {
    out.reset();
    if buf.len() > u32::MAX as usize {
        return Err(ScanError::Drop("datagram too large"));
    }
    let len = buf.len();

    // Stream transports may put CRLFs before a message (RFC 3261 7.5); a datagram of only
    // CRLFs is a keep-alive.
    let first = lex::skip(buf, 0, |b| b == b'\r' || b == b'\n');
    if first >= len {
        return Err(ScanError::Drop("empty or keep-alive"));
    }
    let lf = lex::find(buf, first, b'\n').ok_or(ScanError::Drop("no line end"))?;
    let line_end = content_end(buf, first, lf);
    out.start_line = Span::new(first, line_end);

    let mut problem = Problem::default();
    let request = if lex::sub(buf, first, first + 4).eq_ignore_ascii_case(b"SIP/") {
        out.start = status_line(buf, out.start_line)?;
        false
    } else {
        out.start = request_line(buf, out.start_line, &mut problem)?;
        true
    };
    let finish = |problem: Problem| match problem.first {
        None => Ok(()),
        Some((status, reason)) if request => Err(ScanError::Reject { status, reason }),
        Some((_, reason)) => Err(ScanError::Drop(reason)),
    };

    let mut seen = Seen::default();
    let mut pos = lf + 1;
    let body_start = loop {
        let line = match next_line(buf, pos) {
            Line::Empty { at, next } => {
                out.headers_end = at as u32;
                break Some(next);
            }
            Line::Unterminated => break None,
            Line::Header { first_lf, end } => (first_lf, end),
        };
        let (first_lf, end) = line;
        let start = pos;
        pos = end;
        if out.header_count >= limits::HEADERS_MAX {
            problem.note(400, "too many header lines");
            return finish(problem);
        }
        let idx = out.header_count;
        let Some((name, value)) = split_header(buf, start, first_lf, end) else {
            problem.note(400, "malformed header line");
            if let Some(h) = out.headers.get_mut(idx) {
                *h = Header {
                    name: HeaderName::Other,
                    line: Span::new(start, end),
                    value: Span::new(end, end),
                };
                out.header_count += 1;
            }
            continue;
        };
        if let Some(h) = out.headers.get_mut(idx) {
            *h = Header {
                name,
                line: Span::new(start, end),
                value,
            };
            out.header_count += 1;
        }
        let line = Span::new(start, end);
        match name {
            HeaderName::Via => on_via(buf, out, idx, line, value, &mut problem),
            HeaderName::CallId => {
                if seen.call_id {
                    problem.note(400, "duplicate Call-ID");
                    continue;
                }
                seen.call_id = true;
                out.call_id = value;
                let id = value.get(buf);
                if id.is_empty() {
                    problem.note(400, "empty Call-ID");
                } else if id.len() > limits::CALL_ID_BYTES_MAX {
                    problem.note(400, "Call-ID too long");
                } else if lex::any_ctl_or_space(id) {
                    problem.note(400, "white space in Call-ID");
                }
            }
            HeaderName::CSeq => {
                if seen.cseq {
                    problem.note(400, "duplicate CSeq");
                    continue;
                }
                seen.cseq = true;
                on_cseq(buf, out, value, &mut problem);
            }
            HeaderName::From => {
                if seen.from {
                    problem.note(400, "duplicate From");
                    continue;
                }
                seen.from = true;
                if !name_addr_tag(buf, &mut out.from, idx, value) {
                    problem.note(400, "malformed From");
                }
            }
            HeaderName::To => {
                if seen.to {
                    problem.note(400, "duplicate To");
                    continue;
                }
                seen.to = true;
                if !name_addr_tag(buf, &mut out.to, idx, value) {
                    problem.note(400, "malformed To");
                }
            }
            HeaderName::Route => on_route(buf, out, idx, line, value, &mut problem),
            HeaderName::RecordRoute => {
                for e in CommaSplit::new(buf, value) {
                    if e.value.is_empty() || uri::name_addr(buf, e.value).is_err() {
                        problem.note(400, "malformed Record-Route");
                    }
                    out.record_route_count += 1;
                }
            }
            HeaderName::Contact => on_contact(buf, out, value, &mut problem),
            HeaderName::MaxForwards => {
                if seen.max_forwards {
                    problem.note(400, "duplicate Max-Forwards");
                    continue;
                }
                seen.max_forwards = true;
                match lex::digits(value.get(buf)) {
                    // Over 255 is not an error: a value that large is clamped (RFC 3261
                    // 20.22 only defines 0-255).
                    Some(n) => out.max_forwards = Some((n.min(255) as u32, idx)),
                    None => problem.note(400, "malformed Max-Forwards"),
                }
            }
            HeaderName::ContentLength => {
                if seen.content_length {
                    problem.note(400, "duplicate Content-Length");
                    continue;
                }
                seen.content_length = true;
                match lex::digits(value.get(buf)).and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => out.content_length = Some(n),
                    None => problem.note(400, "malformed Content-Length"),
                }
            }
            HeaderName::ContentType => {
                out.content_type.get_or_insert(value);
            }
            HeaderName::ProxyRequire => {
                out.proxy_require.get_or_insert(idx);
            }
            _ => {}
        }
    };

    if !seen.call_id {
        problem.note(400, "missing Call-ID");
    }
    if !seen.from {
        problem.note(400, "missing From");
    }
    if !seen.to {
        problem.note(400, "missing To");
    }
    if !seen.cseq {
        problem.note(400, "missing CSeq");
    }
    if out.via_count == 0 {
        problem.note(400, "missing Via");
    }
    match body_start {
        None => {
            problem.note(400, "header section not terminated");
            out.headers_end = len as u32;
            out.body = Span::new(len, len);
        }
        Some(b) => match out.content_length {
            None => out.body = Span::new(b, len),
            Some(cl) => {
                let want = b.saturating_add(cl as usize);
                if want > len {
                    problem.note(400, "body shorter than Content-Length");
                    out.body = Span::new(b, len);
                } else {
                    out.body = Span::new(b, want);
                }
            }
        },
    }
    finish(problem)
}

/// The Call-ID value of a datagram, found as fast as possible (used by the shard shell to
/// pick the owning shard before a full scan). `None` if there is none.
///
/// Skips the start line, then looks only at the first byte of each line (memchr from line
/// end to line end) until the empty line: `Call-ID`/`i` in any case, LWS before the colon,
/// the value trimmed and folded lines followed exactly as `scan` does.
pub fn peek_call_id(buf: &[u8]) -> Option<Span> {
    if buf.len() > u32::MAX as usize {
        return None;
    }
    let first = lex::skip(buf, 0, |b| b == b'\r' || b == b'\n');
    let mut pos = lex::find(buf, first, b'\n')? + 1;
    loop {
        let b = lex::byte(buf, pos)?;
        let candidate = match b | 0x20 {
            b'i' => true,
            b'c' => lex::sub(buf, pos, pos + 7).eq_ignore_ascii_case(b"call-id"),
            _ => false,
        };
        if b == b'\r' || b == b'\n' {
            return None;
        }
        if candidate {
            if let Line::Header { first_lf, end } = next_line(buf, pos) {
                if let Some((HeaderName::CallId, value)) = split_header(buf, pos, first_lf, end) {
                    return Some(value);
                }
            }
        }
        pos = lex::find(buf, pos, b'\n')? + 1;
    }
}

/// The first problem found in a message: (status for a request, reason).
#[derive(Default)]
struct Problem {
    first: Option<(u16, &'static str)>,
}

impl Problem {
    #[inline]
    fn note(&mut self, status: u16, reason: &'static str) {
        if self.first.is_none() {
            self.first = Some((status, reason));
        }
    }
}

/// Single-valued headers seen so far (the others are tracked in `Message` itself).
#[derive(Default)]
struct Seen {
    call_id: bool,
    cseq: bool,
    from: bool,
    to: bool,
    max_forwards: bool,
    content_length: bool,
}

impl Message {
    /// Back to the state of `Message::default()`, except the header table, whose entries
    /// past `header_count` are left as they were (clearing 128 entries per datagram would
    /// cost more than the scan of a small message).
    fn reset(&mut self) {
        self.start = StartLine::Response {
            code: 0,
            reason: Span::EMPTY,
        };
        self.start_line = Span::EMPTY;
        self.header_count = 0;
        self.headers_end = 0;
        self.body = Span::EMPTY;
        self.content_length = None;
        self.top_via = Via::EMPTY;
        self.top_via_header = usize::MAX;
        self.top_via_shares_line = false;
        self.top_via_removal = Span::EMPTY;
        self.via_count = 0;
        self.second_via = None;
        self.call_id = Span::EMPTY;
        self.cseq = 0;
        self.cseq_method = Method::Other;
        self.cseq_method_span = Span::EMPTY;
        self.from = NameAddr {
            header: usize::MAX,
            ..NameAddr::default()
        };
        self.to = self.from;
        self.max_forwards = None;
        self.route_first = None;
        self.route_second = None;
        self.record_route_count = 0;
        self.contact = None;
        self.content_type = None;
        self.proxy_require = None;
    }
}

/// End of a line's content: `lf` moved back over one CR (bare-LF lines have none).
#[inline]
fn content_end(buf: &[u8], start: usize, lf: usize) -> usize {
    if lf > start && lex::byte(buf, lf - 1) == Some(b'\r') {
        lf - 1
    } else {
        lf
    }
}

/// `SIP/2.0 SP 3DIGIT SP reason`: anything else is dropped.
fn status_line(buf: &[u8], line: Span) -> Result<StartLine, ScanError> {
    let s = line.get(buf);
    let version = lex::sub(s, 0, 7);
    if !(version.eq_ignore_ascii_case(b"SIP/2.0") && lex::byte(s, 7) == Some(b' ')) {
        return Err(ScanError::Drop("not a SIP/2.0 status line"));
    }
    let code = lex::sub(s, 8, 11);
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) || lex::byte(s, 11) != Some(b' ') {
        return Err(ScanError::Drop("malformed status code"));
    }
    let code = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    if !(100..=699).contains(&code) {
        return Err(ScanError::Drop("status code out of range"));
    }
    let start = line.start as usize;
    Ok(StartLine::Response {
        code,
        reason: Span::new(start + 12, line.end as usize),
    })
}

/// `Method SP Request-URI SP SIP/2.0`. A line that does not look like a request at all
/// (method not a token, or last word not `SIP/...`) is dropped; a request with a bad line
/// is noted (400, or 505 for a version other than 2.0) and scanning goes on.
fn request_line(buf: &[u8], line: Span, problem: &mut Problem) -> Result<StartLine, ScanError> {
    let s = line.get(buf);
    let base = line.start as usize;
    let (spans, words, clean, last) = match words3(s) {
        Some((sp1, sp2)) => {
            let spans = [
                Span::new(base, base + sp1),
                Span::new(base + sp1 + 1, base + sp2),
                Span::new(base + sp2 + 1, base + s.len()),
            ];
            (spans, 3, true, spans[2])
        }
        None => words_slow(s, base),
    };
    let [method_span, uri_span, _] = spans;
    let method_bytes = method_span.get(buf);
    let version = last.get(buf);
    if words < 2
        || method_bytes.is_empty()
        || !method_bytes.iter().all(|&b| lex::is_token(b))
        || !lex::sub(version, 0, 4).eq_ignore_ascii_case(b"SIP/")
    {
        return Err(ScanError::Drop("not a SIP request line"));
    }
    if words != 3 || !clean {
        problem.note(400, "malformed request line");
    } else if !(version.len() == 7 && lex::sub(version, 4, 7) == b"2.0") {
        problem.note(505, "SIP version not supported");
    }
    if words >= 3 {
        match uri::parse(buf, uri_span) {
            Ok(u) if u.headers.is_some() => problem.note(400, "headers in Request-URI"),
            Ok(_) => {}
            Err(_) => problem.note(400, "malformed Request-URI"),
        }
    }
    Ok(StartLine::Request {
        method: Method::from_bytes(method_bytes),
        method_span,
        uri: if words >= 3 {
            uri_span
        } else {
            Span::new(line.end as usize, line.end as usize)
        },
    })
}

/// Fast path of a request line: exactly three non-empty words separated by single SPs and
/// no HT anywhere; the positions of the two SPs.
#[inline]
fn words3(s: &[u8]) -> Option<(usize, usize)> {
    let sp1 = memchr::memchr(b' ', s)?;
    let sp2 = sp1 + 1 + memchr::memchr(b' ', lex::sub(s, sp1 + 1, s.len()))?;
    let ok = sp1 > 0
        && sp2 > sp1 + 1
        && sp2 + 1 < s.len()
        && memchr::memchr2(b' ', b'\t', lex::sub(s, sp2 + 1, s.len())).is_none()
        && memchr::memchr(b'\t', lex::sub(s, 0, sp2)).is_none();
    ok.then_some((sp1, sp2))
}

/// Any request line: up to three word spans, the number of words, whether they are
/// separated by exactly one SP with no white space before the first or after the last,
/// and the last word.
fn words_slow(s: &[u8], base: usize) -> ([Span; 3], usize, bool, Span) {
    let mut spans = [Span::EMPTY; 3];
    let mut words = 0usize;
    let mut clean = true;
    let mut i = 0;
    let mut last = Span::EMPTY;
    while i < s.len() {
        let ws_start = i;
        i = lex::skip(s, i, |b| b == b' ' || b == b'\t');
        let ws = lex::sub(s, ws_start, i);
        if i >= s.len() {
            clean &= ws.is_empty();
            break;
        }
        if (words == 0 && !ws.is_empty()) || (words > 0 && ws != b" ") {
            clean = false;
        }
        let w_start = i;
        i = lex::skip(s, i, |b| b != b' ' && b != b'\t');
        last = Span::new(base + w_start, base + i);
        if let Some(slot) = spans.get_mut(words) {
            *slot = last;
        }
        words += 1;
    }
    (spans, words, clean, last)
}

enum Line {
    /// The empty line at `at` that ends the header section; the body starts at `next`.
    Empty { at: usize, next: usize },
    /// A header from `pos` whose first line ends at `first_lf` and which ends (after any
    /// folded continuation lines and the final line end) at `end`.
    Header { first_lf: usize, end: usize },
    /// The buffer ends before the header section does.
    Unterminated,
}

/// The header line (with its continuation lines) or empty line starting at `pos`.
#[inline]
fn next_line(buf: &[u8], pos: usize) -> Line {
    match lex::byte(buf, pos) {
        None => return Line::Unterminated,
        Some(b'\n') => {
            return Line::Empty {
                at: pos,
                next: pos + 1,
            }
        }
        Some(b'\r') if lex::byte(buf, pos + 1) == Some(b'\n') => {
            return Line::Empty {
                at: pos,
                next: pos + 2,
            }
        }
        Some(_) => {}
    }
    let Some(first_lf) = lex::find(buf, pos, b'\n') else {
        return Line::Unterminated;
    };
    let mut lf = first_lf;
    // A line starting with SP or HT continues this header (folding, RFC 3261 7.3.1).
    while matches!(lex::byte(buf, lf + 1), Some(b' ' | b'\t')) {
        match lex::find(buf, lf + 1, b'\n') {
            Some(next) => lf = next,
            None => return Line::Unterminated,
        }
    }
    Line::Header {
        first_lf,
        end: lf + 1,
    }
}

/// Name and trimmed value of the header in `start..end`; `None` if the first line has no
/// colon or the name is not a token (a line starting with white space has an empty name).
#[inline]
fn split_header(
    buf: &[u8],
    start: usize,
    first_lf: usize,
    end: usize,
) -> Option<(HeaderName, Span)> {
    // One pass over the name: token bytes, then optional SP/HT, then the colon.
    let name_end = lex::skip(lex::sub(buf, 0, first_lf), start, lex::is_token);
    let colon = lex::skip(lex::sub(buf, 0, first_lf), name_end, |b| {
        b == b' ' || b == b'\t'
    });
    if name_end == start || lex::byte(buf, colon) != Some(b':') || colon >= first_lf {
        return None;
    }
    let name = lex::sub(buf, start, name_end);
    let last = content_end(buf, start, end.saturating_sub(1));
    let v_start = lex::skip_lws(lex::sub(buf, 0, last), colon + 1).min(last);
    let v_end = lex::trim_end(buf, v_start, last);
    Some((header::classify(name), Span::new(v_start, v_end)))
}

/// A From or To value into `na`; false if it is not a name-addr or addr-spec.
fn name_addr_tag(buf: &[u8], na: &mut NameAddr, idx: usize, value: Span) -> bool {
    na.header = idx;
    match uri::name_addr(buf, value) {
        Ok((u, params)) => {
            na.uri = u;
            na.tag = uri::param(buf, params, b"tag").flatten();
            true
        }
        Err(_) => false,
    }
}

/// `CSeq: number LWS method`; for a request the method must be the request's.
fn on_cseq(buf: &[u8], out: &mut Message, value: Span, problem: &mut Problem) {
    let s = value.get(buf);
    let base = value.start as usize;
    let n_end = lex::skip(s, 0, |b| b.is_ascii_digit());
    let m_start = lex::skip_lws(s, n_end);
    let m_end = lex::skip(s, m_start, lex::is_token);
    if n_end == 0 || m_start == n_end || m_end == m_start || m_end != s.len() {
        problem.note(400, "malformed CSeq");
        return;
    }
    out.cseq_method_span = Span::new(base + m_start, base + m_end);
    out.cseq_method = Method::from_bytes(out.cseq_method_span.get(buf));
    match lex::digits(lex::sub(s, 0, n_end)).and_then(|n| u32::try_from(n).ok()) {
        Some(n) => out.cseq = n,
        None => problem.note(400, "CSeq number out of range"),
    }
    if let StartLine::Request {
        method,
        method_span,
        ..
    } = out.start
    {
        if method_span.get(buf) != out.cseq_method_span.get(buf) {
            if method == Method::Other {
                problem.note(501, "CSeq method does not match unknown request method");
            } else {
                problem.note(400, "CSeq method does not match request method");
            }
        }
    }
}

/// One Via header line: count its via-parms, parse the top one and the one after it, and
/// check that every other one parses too. A relayed response loses its top Via, and an
/// answer junction generates copies every Via of the request (RFC 3261 8.2.6): either way a
/// Via below the top two becomes one of them at the next hop, which must be able to read it.
/// Messages through a trunk carry one or two Vias, so this costs nothing in the usual case.
fn on_via(
    buf: &[u8],
    out: &mut Message,
    idx: usize,
    line: Span,
    value: Span,
    problem: &mut Problem,
) {
    for e in CommaSplit::new(buf, value) {
        if e.value.is_empty() {
            problem.note(400, "empty Via value");
            continue;
        }
        out.via_count += 1;
        if out.via_count == 1 {
            out.top_via_header = idx;
            match via::parse(buf, e.value) {
                Ok(v) => {
                    if v.branch.is_some_and(|b| b.get(buf) == MAGIC_COOKIE) {
                        problem.note(400, "Via branch is only the magic cookie");
                    }
                    out.top_via = v;
                }
                Err(()) => problem.note(400, "malformed top Via"),
            }
            match e.next {
                Some(next) => {
                    out.top_via_shares_line = true;
                    out.top_via_removal = Span::new(e.value.start as usize, next);
                }
                None => out.top_via_removal = line,
            }
        } else if out.via_count == 2 {
            match via::parse(buf, e.value) {
                Ok(v) => out.second_via = Some(v),
                Err(()) => problem.note(400, "malformed second Via"),
            }
        } else if via::parse(buf, e.value).is_err() {
            problem.note(400, "malformed Via");
        }
    }
    if out.via_count > limits::VIAS_MAX {
        problem.note(400, "too many Via values");
    }
}

/// One Route header line: the first and second Route values of the message.
fn on_route(
    buf: &[u8],
    out: &mut Message,
    idx: usize,
    line: Span,
    value: Span,
    problem: &mut Problem,
) {
    let mut prev_end = None;
    for e in CommaSplit::new(buf, value) {
        if e.value.is_empty() || uri::name_addr(buf, e.value).is_err() {
            problem.note(400, "malformed Route");
        }
        if out.route_first.is_none() {
            let removal = match (e.next, prev_end) {
                (Some(next), _) => Span::new(e.value.start as usize, next),
                (None, None) => line,
                (None, Some(p)) => Span::new(p, e.value.end as usize),
            };
            out.route_first = Some(RouteValue {
                value: e.value,
                header: idx,
                removal,
            });
        } else if out.route_second.is_none() {
            out.route_second = Some(e.value);
        }
        prev_end = Some(e.value.end as usize);
    }
}

/// One Contact header line: the first value, and the checks a proxy relies on (an
/// addr-spec may not carry `?headers`, RFC 4475 regbadct; no empty parameters).
fn on_contact(buf: &[u8], out: &mut Message, value: Span, problem: &mut Problem) {
    for e in CommaSplit::new(buf, value) {
        if out.contact.is_none() {
            out.contact = Some(e.value);
        }
        if e.value.get(buf) == b"*" {
            continue;
        }
        match uri::name_addr(buf, e.value) {
            Ok((u, params)) => {
                let bracketed = u.start > 0 && lex::byte(buf, u.start as usize - 1) == Some(b'<');
                if !bracketed && u.get(buf).contains(&b'?') {
                    problem.note(400, "Contact addr-spec with headers needs <>");
                }
                if !params_well_formed(params.get(buf)) {
                    problem.note(400, "empty Contact parameter");
                }
            }
            Err(_) => problem.note(400, "malformed Contact"),
        }
    }
}

/// Every `;` outside quotes is followed (after LWS) by a parameter name.
fn params_well_formed(s: &[u8]) -> bool {
    let mut i = 0;
    while let Some(b) = lex::byte(s, i) {
        match b {
            b'"' => match lex::quoted_end(s, i) {
                Some(e) => i = e,
                None => return false,
            },
            b';' => {
                i = lex::skip_lws(s, i + 1);
                if !lex::byte(s, i).is_some_and(lex::is_token) {
                    return false;
                }
            }
            _ => i += 1,
        }
    }
    true
}

/// One element of a comma-separated header value.
struct Element {
    /// The element, LWS trimmed (empty for `,,`).
    value: Span,
    /// Where the next element starts (after the comma and LWS), if there is a comma.
    next: Option<usize>,
}

/// Splits a header value at commas outside quoted strings and `<...>`.
struct CommaSplit<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    done: bool,
}

impl<'a> CommaSplit<'a> {
    fn new(buf: &'a [u8], value: Span) -> Self {
        CommaSplit {
            buf,
            pos: value.start as usize,
            end: value.end as usize,
            done: false,
        }
    }
}

impl Iterator for CommaSplit<'_> {
    type Item = Element;

    fn next(&mut self) -> Option<Element> {
        if self.done {
            return None;
        }
        let s = lex::sub(self.buf, 0, self.end);
        let start = lex::skip_lws(s, self.pos).min(self.end);
        // Jump from one interesting byte to the next: a comma ends the element unless it
        // is inside a quoted string or <...>, which are skipped whole.
        let mut i = start;
        let comma = loop {
            let Some(rel) = s
                .get(i..)
                .and_then(|t| memchr::memchr3(b',', b'"', b'<', t))
            else {
                break None;
            };
            i += rel;
            match lex::byte(s, i) {
                Some(b'"') => i = lex::quoted_end(s, i).unwrap_or(self.end),
                Some(b'<') => i = lex::find(s, i + 1, b'>').map_or(self.end, |gt| gt + 1),
                _ => break Some(i),
            }
        };
        let stop = comma.unwrap_or(self.end).min(self.end);
        let value = Span::new(start, lex::trim_end(s, start, stop));
        let next = comma.map(|c| lex::skip_lws(s, c + 1).min(self.end));
        match next {
            Some(n) => self.pos = n,
            None => self.done = true,
        }
        Some(Element { value, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(v: &[u8]) -> Vec<(String, Option<usize>)> {
        CommaSplit::new(v, Span::new(0, v.len()))
            .map(|e| (String::from_utf8_lossy(e.value.get(v)).into_owned(), e.next))
            .collect()
    }

    #[test]
    fn comma_split_respects_quotes_and_angles() {
        let v = b"\"a, b\" <sip:x;p=1,2>;q=1 ,\r\n <sip:y>,,z";
        let got = elements(v);
        let values: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(values, ["\"a, b\" <sip:x;p=1,2>;q=1", "<sip:y>", "", "z"]);
        assert_eq!(got[0].1, Some(29));
        assert_eq!(got[3].1, None);
        assert_eq!(elements(b"one"), [("one".to_string(), None)]);
        assert_eq!(elements(b"a,").len(), 2);
        // An unterminated quote or angle swallows the rest instead of running off.
        assert_eq!(elements(b"\"a, b").len(), 1);
        assert_eq!(elements(b"<a, b").len(), 1);
    }

    #[test]
    fn contact_params() {
        assert!(params_well_formed(b""));
        assert!(params_well_formed(b";q=0.5;expires=60"));
        assert!(params_well_formed(b" ; x = \"a;;b\" ; y"));
        assert!(!params_well_formed(b";;"));
        assert!(!params_well_formed(b";q=1;"));
        assert!(!params_well_formed(b";x=\"open"));
    }

    #[test]
    fn request_line_words() {
        assert_eq!(words3(b"INVITE sip:a@b SIP/2.0"), Some((6, 14)));
        for odd in [
            &b"INVITE  sip:a@b SIP/2.0"[..],
            b"INVITE sip:a@b SIP/2.0 ",
            b" INVITE sip:a@b SIP/2.0",
            b"INVITE\tsip:a@b SIP/2.0",
            b"INVITE sip:a@b SIP/2.0\tx",
            b"INVITE sip:a@b",
        ] {
            assert_eq!(words3(odd), None, "{}", String::from_utf8_lossy(odd));
        }
        let (spans, words, clean, last) = words_slow(b"A  b c d ", 10);
        assert_eq!((words, clean), (4, false));
        assert_eq!(spans[1], Span::new(13, 14));
        assert_eq!(last, Span::new(17, 18));
    }
}
