//! SIP/SIPS/tel URI spans (RFC 3261 19.1, RFC 3966) without allocation.

use super::Span;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    /// A syntactically valid scheme we do not route (answer 416).
    Other,
}

/// A parsed URI: all spans index the same buffer as the input span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    /// For sip/sips: userinfo's user part (before ':' password and '@'), raw (not unescaped).
    /// For tel: the number (before the first ';').
    pub user: Option<Span>,
    /// For sip/sips: the host as written; IPv6 references keep their brackets.
    /// Empty for tel and other schemes.
    pub host: Span,
    pub port: Option<u16>,
    /// Everything after the host[:port] and before any '?', starting with ';' (may be empty).
    pub params: Span,
    /// The `?headers` part without the '?', if present.
    pub headers: Option<Span>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriError {
    /// Not a URI at all (no scheme, illegal characters, white space, brackets, ...): 400.
    Syntax,
}

/// Parse the URI in `span` of `buf` (a bare addr-spec, no <> and no display name).
pub fn parse(buf: &[u8], span: Span) -> Result<Uri, UriError> {
    let _ = (buf, span);
    unimplemented!("scanner helper implements this")
}

/// From a name-addr or addr-spec header value (`"Bob" <sip:bob@h>;tag=x` or `sip:bob@h;tag=x`),
/// the span of the URI itself (inside the <> if present) and the span of the header
/// parameters after it (starting at ';', possibly empty).
pub fn name_addr(buf: &[u8], value: Span) -> Result<(Span, Span), UriError> {
    let _ = (buf, value);
    unimplemented!("scanner helper implements this")
}

/// Find parameter `name` (case-insensitive) in a `;a=b;c` parameter list.
/// `None`: absent. `Some(None)`: present without a value. `Some(Some(v))`: its value span.
pub fn param(buf: &[u8], params: Span, name: &[u8]) -> Option<Option<Span>> {
    let _ = (buf, params, name);
    unimplemented!("scanner helper implements this")
}

/// The IP address of a host span (IPv4 dotted quad or bracketed IPv6); `None` for names.
pub fn host_ip(buf: &[u8], host: Span) -> Option<IpAddr> {
    let _ = (buf, host);
    unimplemented!("scanner helper implements this")
}
