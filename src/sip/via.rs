//! The top Via value: sent-by, branch, received, rport (RFC 3261 18.2, RFC 3581).

use super::Span;

/// RFC 3261 magic cookie that starts every RFC 3261 branch.
pub const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rport {
    Absent,
    /// `;rport` without a value: the client asks us to fill it in. The span covers `rport`.
    Empty(Span),
    Value(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via {
    /// The whole first via-parm (`SIP/2.0/UDP host:port;params`), trimmed.
    pub value: Span,
    /// `UDP`, `TCP`, ... as written.
    pub transport: Span,
    /// The sent-by host as written; IPv6 keeps its brackets.
    pub host: Span,
    pub port: Option<u16>,
    pub branch: Option<Span>,
    /// Value of `received=`; brackets around IPv6 (RFC 5118 4.5) are kept in the span.
    pub received: Option<Span>,
    pub rport: Rport,
    /// Offset just after the last parameter of this via-parm: where `;received=..` goes.
    pub params_end: u32,
}

impl Via {
    pub const EMPTY: Via = Via {
        value: Span::EMPTY,
        transport: Span::EMPTY,
        host: Span::EMPTY,
        port: None,
        branch: None,
        received: None,
        rport: Rport::Absent,
        params_end: 0,
    };
}

/// Parse one via-parm (a single comma-separated element) in `span` of `buf`.
pub fn parse(buf: &[u8], span: Span) -> Result<Via, ()> {
    let _ = (buf, span);
    unimplemented!("scanner helper implements this")
}
