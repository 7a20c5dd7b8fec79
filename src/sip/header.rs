//! Header names the core cares about, one table from name (long and compact form,
//! case-insensitive) to a tag, as Kamailio's parse_hname2 does.

use super::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderName {
    Via,               // v
    CallId,            // i
    CSeq,
    From,              // f
    To,                // t
    Route,
    RecordRoute,
    MaxForwards,
    Contact,           // m
    ContentLength,     // l
    ContentType,       // c
    ProxyRequire,
    Require,
    Supported,         // k
    Reason,
    PAssertedIdentity,
    RetryAfter,
    /// Anything else: relayed untouched.
    Other,
}

/// One header line as it stands in the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    /// The whole header: from the first byte of the name through the CRLF that ends it
    /// (after any folded continuation lines). Removing `line` removes the header.
    pub line: Span,
    /// The value: after the colon, leading and trailing LWS trimmed; may contain folded
    /// CRLF + WS inside (callers that need tokens treat CR/LF as white space).
    pub value: Span,
}

impl Header {
    pub const EMPTY: Header = Header {
        name: HeaderName::Other,
        line: Span::EMPTY,
        value: Span::EMPTY,
    };
}

/// Classify a header name (the bytes before the colon, trailing white space removed).
pub fn classify(name: &[u8]) -> HeaderName {
    let _ = name;
    unimplemented!("scanner helper implements this")
}
