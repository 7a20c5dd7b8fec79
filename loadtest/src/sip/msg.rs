//! One-pass, non-allocating reader of a received SIP message: the start line and the spans of
//! the headers a UA needs. Everything is a byte range into the datagram; nothing here panics on
//! any input (a malformed message is an `Err` naming what is wrong).

use crate::limits::{HEADER_LINES_MAX, ROUTE_SET_MAX};

/// A byte range into the message buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or(&[])
    }
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Other,
}

impl Method {
    pub fn parse(b: &[u8]) -> Method {
        match b {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: Method,
        method_span: Span,
        uri: Span,
    },
    Response {
        code: u16,
    },
}

/// Which header a line is, for the ones we look at; `Other` for the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hdr {
    Via,
    From,
    To,
    CallId,
    CSeq,
    RecordRoute,
    Route,
    Contact,
    ContentLength,
    Other,
}

pub fn classify(name: &[u8]) -> Hdr {
    if name.len() == 1 {
        return match name[0].to_ascii_lowercase() {
            b'v' => Hdr::Via,
            b'f' => Hdr::From,
            b't' => Hdr::To,
            b'i' => Hdr::CallId,
            b'm' => Hdr::Contact,
            b'l' => Hdr::ContentLength,
            _ => Hdr::Other,
        };
    }
    let eq = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    match name.len() {
        3 if eq("Via") => Hdr::Via,
        4 if eq("From") => Hdr::From,
        2 if eq("To") => Hdr::To,
        7 if eq("Call-ID") => Hdr::CallId,
        4 if eq("CSeq") => Hdr::CSeq,
        12 if eq("Record-Route") => Hdr::RecordRoute,
        5 if eq("Route") => Hdr::Route,
        7 if eq("Contact") => Hdr::Contact,
        14 if eq("Content-Length") => Hdr::ContentLength,
        _ => Hdr::Other,
    }
}

/// The compact form of a header name, if it has one (RFC 3261 7.3.3 and extensions).
pub fn compact_form(name: &[u8]) -> Option<u8> {
    let forms: [(&str, u8); 9] = [
        ("Via", b'v'),
        ("From", b'f'),
        ("To", b't'),
        ("Call-ID", b'i'),
        ("Contact", b'm'),
        ("Content-Length", b'l'),
        ("Content-Type", b'c'),
        ("Subject", b's'),
        ("Supported", b'k'),
    ];
    forms
        .iter()
        .find(|(long, _)| name.eq_ignore_ascii_case(long.as_bytes()))
        .map(|(_, c)| *c)
}

/// One header line: the whole line (without CRLF), its name and its value (trimmed).
#[derive(Clone, Copy, Debug, Default)]
pub struct Line {
    pub line: Span,
    pub name: Span,
    pub value: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    NoEndOfHeaders,
    BadStartLine,
    BadHeaderLine,
    TooManyHeaders,
    MissingCallId,
    BadCSeq,
    BadContentLength,
    Truncated,
}

impl ParseError {
    pub fn as_str(self) -> &'static str {
        match self {
            ParseError::NoEndOfHeaders => "no end of headers",
            ParseError::BadStartLine => "bad start line",
            ParseError::BadHeaderLine => "bad header line",
            ParseError::TooManyHeaders => "too many headers",
            ParseError::MissingCallId => "no Call-ID",
            ParseError::BadCSeq => "bad or missing CSeq",
            ParseError::BadContentLength => "bad Content-Length",
            ParseError::Truncated => "body shorter than Content-Length",
        }
    }
}

/// A parsed message borrowing its datagram.
pub struct Msg<'a> {
    pub buf: &'a [u8],
    pub start: StartLine,
    pub lines: [Line; HEADER_LINES_MAX],
    pub line_count: usize,
    pub call_id: Span,
    pub cseq_num: u32,
    pub cseq_method: Method,
    pub from: Span,
    pub to: Span,
    pub from_tag: Span,
    pub to_tag: Span,
    pub top_via: Span,
    pub top_branch: Span,
    pub contact_uri: Span,
    pub record_route: [Span; ROUTE_SET_MAX],
    pub record_route_count: usize,
    pub record_route_overflow: bool,
    pub body: Span,
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(buf: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e
        && buf
            .get(s)
            .is_some_and(|&b| is_ws(b) || b == b'\r' || b == b'\n')
    {
        s += 1;
    }
    while e > s
        && buf
            .get(e - 1)
            .is_some_and(|&b| is_ws(b) || b == b'\r' || b == b'\n')
    {
        e -= 1;
    }
    (s, e)
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let tail = hay.get(from..)?;
    if needle.len() == 2 {
        // "\r\n": find the LF, check the CR before it.
        let mut at = 0;
        while let Some(p) = memchr::memchr(needle[1], tail.get(at + 1..)?) {
            let i = at + 1 + p;
            if tail.get(i - 1) == Some(&needle[0]) {
                return Some(from + i - 1);
            }
            at = i;
        }
        return None;
    }
    if needle == b"\r\n\r\n" {
        // The end of the headers: an LF preceded by CR and followed by CR LF. (A memmem
        // searcher built per message costs more than the whole scan.)
        let mut at = 0;
        while let Some(p) = memchr::memchr(b'\n', tail.get(at..)?) {
            let i = at + p;
            if i >= 1
                && tail.get(i - 1) == Some(&b'\r')
                && tail.get(i + 1) == Some(&b'\r')
                && tail.get(i + 2) == Some(&b'\n')
            {
                return Some(from + i - 1);
            }
            at = i + 1;
        }
        return None;
    }
    memchr::memmem::find(tail, needle).map(|p| from + p)
}

fn parse_u32(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// The value of parameter `name` (e.g. `tag`, `branch`) in a header value, outside `<...>` and
/// quoted strings. An empty span when absent.
pub fn param(buf: &[u8], value: Span, name: &[u8]) -> Span {
    let v = value.get(buf);
    let base = value.start as usize;
    let mut in_angle = false;
    let mut in_quote = false;
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        match c {
            b'"' if !in_angle => in_quote = !in_quote,
            b'<' if !in_quote => in_angle = true,
            b'>' if !in_quote => in_angle = false,
            b';' if !in_angle && !in_quote => {
                let mut j = i + 1;
                while j < v.len() && is_ws(v[j]) {
                    j += 1;
                }
                let n_end = j + name.len();
                if n_end <= v.len() && v[j..n_end].eq_ignore_ascii_case(name) {
                    let mut k = n_end;
                    while k < v.len() && is_ws(v[k]) {
                        k += 1;
                    }
                    if k < v.len() && v[k] == b'=' {
                        k += 1;
                        while k < v.len() && is_ws(v[k]) {
                            k += 1;
                        }
                        let s = k;
                        while k < v.len() && !matches!(v[k], b';' | b',' | b' ' | b'\t' | b'>') {
                            k += 1;
                        }
                        return Span::new(base + s, base + k);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Span::default()
}

/// The URI of a name-addr or addr-spec value: inside `<...>` if present, else up to the first
/// `;` (RFC 3261 20: header parameters of an addr-spec without brackets).
pub fn addr_uri(buf: &[u8], value: Span) -> Span {
    let v = value.get(buf);
    let base = value.start as usize;
    let mut in_quote = false;
    for (i, &c) in v.iter().enumerate() {
        match c {
            b'"' => in_quote = !in_quote,
            b'<' if !in_quote => {
                let end = v[i + 1..]
                    .iter()
                    .position(|&b| b == b'>')
                    .map_or(v.len(), |p| i + 1 + p);
                return Span::new(base + i + 1, base + end);
            }
            _ => {}
        }
    }
    let end = v
        .iter()
        .position(|&b| b == b';' || b == b',')
        .unwrap_or(v.len());
    let (s, e) = trim(buf, base, base + end);
    Span::new(s, e)
}

/// Split a header value at top-level commas (outside `<>` and quotes), calling `f` per element.
pub fn split_commas(buf: &[u8], value: Span, mut f: impl FnMut(Span)) {
    let v = value.get(buf);
    let base = value.start as usize;
    let mut in_angle = false;
    let mut in_quote = false;
    let mut s = 0;
    for (i, &c) in v.iter().enumerate() {
        match c {
            b'"' if !in_angle => in_quote = !in_quote,
            b'<' if !in_quote => in_angle = true,
            b'>' if !in_quote => in_angle = false,
            b',' if !in_angle && !in_quote => {
                let (a, b) = trim(buf, base + s, base + i);
                if b > a {
                    f(Span::new(a, b));
                }
                s = i + 1;
            }
            _ => {}
        }
    }
    let (a, b) = trim(buf, base + s, base + v.len());
    if b > a {
        f(Span::new(a, b));
    }
}

impl<'a> Msg<'a> {
    pub fn parse(buf: &'a [u8]) -> Result<Msg<'a>, ParseError> {
        // Tolerate leading CRLFs (keep-alives glued to a message).
        let mut pos = 0;
        while pos < buf.len() && (buf[pos] == b'\r' || buf[pos] == b'\n') {
            pos += 1;
        }
        let head_end = find(buf, pos, b"\r\n\r\n").ok_or(ParseError::NoEndOfHeaders)?;
        let first_end = find(buf, pos, b"\r\n").ok_or(ParseError::BadStartLine)?;
        let start = parse_start_line(buf, pos, first_end)?;
        let mut m = Msg {
            buf,
            start,
            lines: [Line::default(); HEADER_LINES_MAX],
            line_count: 0,
            call_id: Span::default(),
            cseq_num: 0,
            cseq_method: Method::Other,
            from: Span::default(),
            to: Span::default(),
            from_tag: Span::default(),
            to_tag: Span::default(),
            top_via: Span::default(),
            top_branch: Span::default(),
            contact_uri: Span::default(),
            record_route: [Span::default(); ROUTE_SET_MAX],
            record_route_count: 0,
            record_route_overflow: false,
            body: Span::default(),
        };
        let mut content_length: Option<usize> = None;
        let mut cseq_seen = false;
        let mut i = first_end + 2;
        while i < head_end + 2 {
            // One logical line, with folded continuation lines (leading SP/HT).
            let mut e = find(buf, i, b"\r\n").unwrap_or(head_end);
            while e < head_end && buf.get(e + 2).is_some_and(|&b| is_ws(b)) {
                e = find(buf, e + 2, b"\r\n").unwrap_or(head_end);
            }
            let colon = buf
                .get(i..e)
                .unwrap_or(&[])
                .iter()
                .position(|&b| b == b':')
                .ok_or(ParseError::BadHeaderLine)?;
            let (ns, ne) = trim(buf, i, i + colon);
            if ne == ns {
                return Err(ParseError::BadHeaderLine);
            }
            let (vs, ve) = trim(buf, i + colon + 1, e);
            let line = Line {
                line: Span::new(i, e),
                name: Span::new(ns, ne),
                value: Span::new(vs, ve),
            };
            if m.line_count >= HEADER_LINES_MAX {
                return Err(ParseError::TooManyHeaders);
            }
            m.lines[m.line_count] = line;
            m.line_count += 1;
            let value = line.value;
            match classify(buf.get(ns..ne).unwrap_or(&[])) {
                Hdr::Via if m.top_via.is_empty() => {
                    // The first via-parm of the first Via line.
                    let mut first = Span::default();
                    split_commas(buf, value, |s| {
                        if first.is_empty() {
                            first = s;
                        }
                    });
                    m.top_via = first;
                    m.top_branch = param(buf, first, b"branch");
                }
                Hdr::CallId if m.call_id.is_empty() => m.call_id = value,
                Hdr::From if m.from.is_empty() => {
                    m.from = value;
                    m.from_tag = param(buf, value, b"tag");
                }
                Hdr::To if m.to.is_empty() => {
                    m.to = value;
                    m.to_tag = param(buf, value, b"tag");
                }
                Hdr::CSeq if !cseq_seen => {
                    let v = value.get(buf);
                    let sp = v
                        .iter()
                        .position(|&b| is_ws(b))
                        .ok_or(ParseError::BadCSeq)?;
                    m.cseq_num =
                        parse_u32(v.get(..sp).unwrap_or(&[])).ok_or(ParseError::BadCSeq)?;
                    let (ms, me) = trim(buf, vs + sp, ve);
                    m.cseq_method = Method::parse(buf.get(ms..me).unwrap_or(&[]));
                    cseq_seen = true;
                }
                Hdr::Contact if m.contact_uri.is_empty() => {
                    let mut first = Span::default();
                    split_commas(buf, value, |s| {
                        if first.is_empty() {
                            first = s;
                        }
                    });
                    m.contact_uri = addr_uri(buf, first);
                }
                Hdr::RecordRoute => split_commas(buf, value, |s| {
                    if m.record_route_count < ROUTE_SET_MAX {
                        m.record_route[m.record_route_count] = s;
                        m.record_route_count += 1;
                    } else {
                        m.record_route_overflow = true;
                    }
                }),
                Hdr::ContentLength if content_length.is_none() => {
                    let n = parse_u32(value.get(buf)).ok_or(ParseError::BadContentLength)?;
                    content_length = Some(n as usize);
                }
                _ => {}
            }
            i = e + 2;
        }
        if m.call_id.is_empty() {
            return Err(ParseError::MissingCallId);
        }
        if !cseq_seen {
            return Err(ParseError::BadCSeq);
        }
        let body_start = head_end + 4;
        let body_end = match content_length {
            Some(n) => {
                let end = body_start
                    .checked_add(n)
                    .ok_or(ParseError::BadContentLength)?;
                if end > buf.len() {
                    return Err(ParseError::Truncated);
                }
                end
            }
            None => buf.len(),
        };
        m.body = Span::new(body_start, body_end);
        Ok(m)
    }

    pub fn get(&self, s: Span) -> &'a [u8] {
        s.get(self.buf)
    }

    pub fn headers(&self) -> &[Line] {
        self.lines.get(..self.line_count).unwrap_or(&[])
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn code(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// Every line of header `name` (long or compact form), in order.
    pub fn lines_named<'s>(&'s self, name: &'s [u8]) -> impl Iterator<Item = Line> + 's {
        let compact = compact_form(name);
        self.headers().iter().copied().filter(move |l| {
            let n = l.name.get(self.buf);
            n.eq_ignore_ascii_case(name)
                || (n.len() == 1 && Some(n[0].to_ascii_lowercase()) == compact)
        })
    }
}

fn parse_start_line(buf: &[u8], s: usize, e: usize) -> Result<StartLine, ParseError> {
    let line = buf.get(s..e).ok_or(ParseError::BadStartLine)?;
    if line.starts_with(b"SIP/2.0 ") {
        let code = line
            .get(8..11)
            .and_then(parse_u32)
            .ok_or(ParseError::BadStartLine)?;
        if !(100..700).contains(&code) || line.get(11).is_some_and(|&b| b != b' ') {
            return Err(ParseError::BadStartLine);
        }
        return Ok(StartLine::Response { code: code as u16 });
    }
    let sp1 = line
        .iter()
        .position(|&b| b == b' ')
        .ok_or(ParseError::BadStartLine)?;
    let sp2 = line
        .iter()
        .rposition(|&b| b == b' ')
        .ok_or(ParseError::BadStartLine)?;
    if sp2 <= sp1 + 1 || line.get(sp2 + 1..) != Some(&b"SIP/2.0"[..]) || sp1 == 0 {
        return Err(ParseError::BadStartLine);
    }
    Ok(StartLine::Request {
        method: Method::parse(line.get(..sp1).unwrap_or(&[])),
        method_span: Span::new(s, s + sp1),
        uri: Span::new(s + sp1 + 1, s + sp2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:2125551234@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1;rport\r\n\
v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-0\r\n\
Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\n\
Record-Route: <sip:p3;lr>\r\n\
f: \"A, B\" <sip:a@x>;tag=abc\r\n\
To: <sip:b@y>\r\n\
i: call-1@x\r\n\
CSeq: 7 INVITE\r\n\
m: <sip:a@127.0.0.1:5061;transport=udp>;expires=3\r\n\
Content-Length: 4\r\n\r\nabcdXX";

    #[test]
    fn parses_request_headers() {
        let m = Msg::parse(INVITE).unwrap();
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.get(m.call_id), b"call-1@x");
        assert_eq!(m.cseq_num, 7);
        assert_eq!(m.cseq_method, Method::Invite);
        assert_eq!(m.get(m.from_tag), b"abc");
        assert!(m.to_tag.is_empty());
        assert_eq!(m.get(m.top_branch), b"z9hG4bK-1");
        assert_eq!(m.record_route_count, 3);
        assert_eq!(m.get(m.record_route[1]), b"<sip:p2;lr>");
        assert_eq!(m.get(m.contact_uri), b"sip:a@127.0.0.1:5061;transport=udp");
        assert_eq!(m.get(m.body), b"abcd");
        assert_eq!(m.lines_named(b"Via").count(), 2);
    }

    #[test]
    fn parses_response() {
        let r =
            b"SIP/2.0 180 Ringing\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nTo: <sip:b@y>;tag=t9\r\n\r\n";
        let m = Msg::parse(r).unwrap();
        assert_eq!(m.code(), Some(180));
        assert_eq!(m.get(m.to_tag), b"t9");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        let cases: [&[u8]; 8] = [
            b"",
            b"\r\n\r\n",
            b"SIP/2.0 99 X\r\nCall-ID: x\r\nCSeq: 1 A\r\n\r\n",
            b"INVITE sip:x SIP/2.0\r\nnocolon\r\n\r\n",
            b"INVITE sip:x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n",
            b"INVITE sip:x SIP/2.0\r\nCall-ID: x\r\nCSeq: x INVITE\r\n\r\n",
            b"INVITE sip:x SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 9\r\n\r\nab",
            b"INVITE  SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
        ];
        for c in cases {
            assert!(Msg::parse(c).is_err(), "{:?}", String::from_utf8_lossy(c));
        }
        // Deterministic mutations: flip, delete and duplicate bytes all over a valid message.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut v = INVITE.to_vec();
            let at = (x as usize) % v.len();
            match (x >> 32) % 4 {
                0 => v[at] = (x >> 40) as u8,
                1 => {
                    v.remove(at);
                }
                2 => v.insert(at, b"\r\n:;<>\" ,"[((x >> 40) % 7) as usize]),
                _ => v.truncate(at),
            }
            if let Ok(m) = Msg::parse(&v) {
                assert!(m.body.end as usize <= v.len());
                for l in m.headers() {
                    assert!(l.line.end as usize <= v.len());
                }
            }
        }
        // Every prefix of a valid message either parses or errors, never panics.
        for n in 0..INVITE.len() {
            let _ = Msg::parse(&INVITE[..n]);
        }
    }
}
