//! Header names the core cares about, one table from name (long and compact form,
//! case-insensitive) to a tag, as Kamailio's parse_hname2 does.

use super::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderName {
    Via,    // v
    CallId, // i
    CSeq,
    From, // f
    To,   // t
    Route,
    RecordRoute,
    MaxForwards,
    Contact,       // m
    ContentLength, // l
    ContentType,   // c
    ProxyRequire,
    Require,
    Supported, // k
    Reason,
    PAssertedIdentity,
    RetryAfter,
    /// RFC 3323 Privacy, RFC 8224 Identity (compact `y`), RFC 5806 Diversion, RFC 7044
    /// History-Info: the calling-party headers junction acts on per trunk.
    Privacy,
    Identity,
    Diversion,
    HistoryInfo,
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
///
/// One match on the length, then one case-insensitive compare against the few names of
/// that length (the first byte picks among them): no allocation, no loop over a table.
pub fn classify(name: &[u8]) -> HeaderName {
    let first = match name.first() {
        Some(b) => b.to_ascii_lowercase(),
        None => return HeaderName::Other,
    };
    // `long` is lower case: fold only the input (the length is already known equal).
    let is = |long: &[u8]| {
        name.iter()
            .zip(long)
            .all(|(&a, &b)| a.to_ascii_lowercase() == b)
    };
    match (name.len(), first) {
        (1, b'v') => HeaderName::Via,
        (1, b'i') => HeaderName::CallId,
        (1, b'f') => HeaderName::From,
        (1, b't') => HeaderName::To,
        (1, b'm') => HeaderName::Contact,
        (1, b'l') => HeaderName::ContentLength,
        (1, b'c') => HeaderName::ContentType,
        (1, b'k') => HeaderName::Supported,
        (1, b'y') => HeaderName::Identity,
        (2, b't') if is(b"to") => HeaderName::To,
        (3, b'v') if is(b"via") => HeaderName::Via,
        (4, b'c') if is(b"cseq") => HeaderName::CSeq,
        (4, b'f') if is(b"from") => HeaderName::From,
        (5, b'r') if is(b"route") => HeaderName::Route,
        (6, b'r') if is(b"reason") => HeaderName::Reason,
        (7, b'c') if is(b"call-id") => HeaderName::CallId,
        (7, b'c') if is(b"contact") => HeaderName::Contact,
        (7, b'r') if is(b"require") => HeaderName::Require,
        (7, b'p') if is(b"privacy") => HeaderName::Privacy,
        (8, b'i') if is(b"identity") => HeaderName::Identity,
        (9, b'd') if is(b"diversion") => HeaderName::Diversion,
        (12, b'h') if is(b"history-info") => HeaderName::HistoryInfo,
        (9, b's') if is(b"supported") => HeaderName::Supported,
        (11, b'r') if is(b"retry-after") => HeaderName::RetryAfter,
        (12, b'r') if is(b"record-route") => HeaderName::RecordRoute,
        (12, b'm') if is(b"max-forwards") => HeaderName::MaxForwards,
        (12, b'c') if is(b"content-type") => HeaderName::ContentType,
        (13, b'p') if is(b"proxy-require") => HeaderName::ProxyRequire,
        (14, b'c') if is(b"content-length") => HeaderName::ContentLength,
        (19, b'p') if is(b"p-asserted-identity") => HeaderName::PAssertedIdentity,
        _ => HeaderName::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_compact_and_case() {
        let cases: &[(&[u8], HeaderName)] = &[
            (b"Via", HeaderName::Via),
            (b"vIA", HeaderName::Via),
            (b"v", HeaderName::Via),
            (b"V", HeaderName::Via),
            (b"Call-ID", HeaderName::CallId),
            (b"call-id", HeaderName::CallId),
            (b"i", HeaderName::CallId),
            (b"I", HeaderName::CallId),
            (b"CSeq", HeaderName::CSeq),
            (b"cseq", HeaderName::CSeq),
            (b"From", HeaderName::From),
            (b"f", HeaderName::From),
            (b"To", HeaderName::To),
            (b"t", HeaderName::To),
            (b"Route", HeaderName::Route),
            (b"Record-Route", HeaderName::RecordRoute),
            (b"MaX-fOrWaRdS", HeaderName::MaxForwards),
            (b"Contact", HeaderName::Contact),
            (b"m", HeaderName::Contact),
            (b"Content-Length", HeaderName::ContentLength),
            (b"l", HeaderName::ContentLength),
            (b"L", HeaderName::ContentLength),
            (b"Content-Type", HeaderName::ContentType),
            (b"c", HeaderName::ContentType),
            (b"Proxy-Require", HeaderName::ProxyRequire),
            (b"Require", HeaderName::Require),
            (b"Supported", HeaderName::Supported),
            (b"k", HeaderName::Supported),
            (b"Reason", HeaderName::Reason),
            (b"P-Asserted-Identity", HeaderName::PAssertedIdentity),
            (b"Retry-After", HeaderName::RetryAfter),
            (b"s", HeaderName::Other),
            (b"e", HeaderName::Other),
            (b"Subject", HeaderName::Other),
            (b"C%6Fntact", HeaderName::Other),
            (b"", HeaderName::Other),
            (b"Vias", HeaderName::Other),
            (b"Contacts", HeaderName::Other),
            (b"Content-Lengt", HeaderName::Other),
            (b"x", HeaderName::Other),
        ];
        for (name, want) in cases {
            assert_eq!(classify(name), *want, "{}", String::from_utf8_lossy(name));
        }
    }
}
