//! The top Via value: sent-by, branch, received, rport (RFC 3261 18.2, RFC 3581).

use super::uri::lex;
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
    /// RFC 7339 overload control: the first `oc` parameter, from its `;` to the end of its
    /// value if any (a client that supports overload control sends it without a value).
    pub oc: Option<Span>,
    /// The first `oc-algo`, `oc-validity` and `oc-seq` parameters, each from its `;`: they
    /// are replaced when we write our own feedback into this Via.
    pub oc_others: [Option<Span>; 3],
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
        oc: None,
        oc_others: [None; 3],
    };
}

/// Parse one via-parm (a single comma-separated element) in `span` of `buf`.
///
/// `sent-protocol LWS sent-by *( SEMI via-params )` (RFC 3261 20.42, 25.1): LWS, including
/// folded line ends, is allowed around `/`, `:`, `;` and `=`. Protocol name, version and
/// transport are any tokens (the caller checks the version it needs). The host is a name,
/// an IPv4 address or a bracketed IPv6 reference; the port at most 65535. Every parameter
/// needs a name (`;;` fails, RFC 4475 badinv01); a value is a token, an address
/// (`received=2001:db8::9:255` or `[2001:db8::9:255]`, RFC 5118 4.5) or a quoted string.
/// `branch` and `received` need a value, `rport` a port when it has one.
// The signature is the interface the core was written against; `()` is enough: the
// scanner turns any failure into one 400/drop reason.
#[allow(clippy::result_unit_err)]
pub fn parse(buf: &[u8], span: Span) -> Result<Via, ()> {
    let s = span.get(buf);
    if s.len() != span.len() {
        return Err(());
    }
    let base = span.start as usize;
    let at = |i: usize| Span::new(base + i, base + i);
    let sp = |a: usize, b: usize| Span::new(base + a, base + b);
    let start = lex::skip_lws(s, 0);
    let end = lex::trim_end(s, start, s.len());
    let s = lex::sub(s, 0, end);
    if start >= end {
        return Err(());
    }

    // sent-protocol: name SLASH version SLASH transport
    let token = |i: usize| -> Result<usize, ()> {
        let e = lex::skip(s, i, lex::is_token);
        if e > i {
            Ok(e)
        } else {
            Err(())
        }
    };
    let slash = |i: usize| -> Result<usize, ()> {
        let i = lex::skip_lws(s, i);
        if lex::byte(s, i) != Some(b'/') {
            return Err(());
        }
        Ok(lex::skip_lws(s, i + 1))
    };
    let mut i = token(start)?;
    i = slash(i)?;
    i = token(i)?;
    i = slash(i)?;
    let transport_start = i;
    i = token(i)?;
    let transport = sp(transport_start, i);

    // LWS sent-by
    let host_start = lex::skip_lws(s, i);
    if host_start == i {
        return Err(());
    }
    i = lex::host_end(s, host_start).ok_or(())?;
    let host = sp(host_start, i);
    let mut port = None;
    let j = lex::skip_lws(s, i);
    if lex::byte(s, j) == Some(b':') {
        let d = lex::skip_lws(s, j + 1);
        let e = lex::skip(s, d, |b| b.is_ascii_digit());
        port = Some(lex::port(lex::sub(s, d, e)).ok_or(())?);
        i = e;
    }

    let mut via = Via {
        value: sp(start, end),
        transport,
        host,
        port,
        branch: None,
        received: None,
        rport: Rport::Absent,
        params_end: at(i).end,
        oc: None,
        oc_others: [None; 3],
    };

    // *( SEMI via-params )
    loop {
        let j = lex::skip_lws(s, i);
        if j >= end {
            break;
        }
        if lex::byte(s, j) != Some(b';') {
            return Err(());
        }
        let name_start = lex::skip_lws(s, j + 1);
        let name_end = token(name_start)?;
        let name = lex::sub(s, name_start, name_end);
        i = name_end;
        let mut value = None;
        let k = lex::skip_lws(s, name_end);
        if lex::byte(s, k) == Some(b'=') {
            let v = lex::skip_lws(s, k + 1);
            let e = if lex::byte(s, v) == Some(b'"') {
                lex::quoted_end(s, v).ok_or(())?
            } else {
                lex::skip(s, v, |b| {
                    lex::is_token(b) || matches!(b, b':' | b'[' | b']')
                })
            };
            if e == v {
                return Err(());
            }
            value = Some(sp(v, e));
            i = e;
        }
        via.params_end = at(i).end;
        if name.eq_ignore_ascii_case(b"branch") {
            if via.branch.is_none() {
                via.branch = Some(value.ok_or(())?);
            }
        } else if name.eq_ignore_ascii_case(b"received") {
            if via.received.is_none() {
                via.received = Some(value.ok_or(())?);
            }
        } else if name.eq_ignore_ascii_case(b"rport") && via.rport == Rport::Absent {
            via.rport = match value {
                None => Rport::Empty(sp(name_start, name_end)),
                Some(v) => Rport::Value(lex::port(v.get(buf)).ok_or(())?),
            };
        } else if let Some(slot) = oc_slot(&mut via, name) {
            if slot.is_none() {
                *slot = Some(sp(j, i));
            }
        }
    }
    Ok(via)
}

/// Where an RFC 7339 parameter named `name` is recorded, if it is one.
fn oc_slot<'v>(via: &'v mut Via, name: &[u8]) -> Option<&'v mut Option<Span>> {
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    if is(b"oc") {
        Some(&mut via.oc)
    } else if is(b"oc-algo") {
        via.oc_others.get_mut(0)
    } else if is(b"oc-validity") {
        via.oc_others.get_mut(1)
    } else if is(b"oc-seq") {
        via.oc_others.get_mut(2)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via(s: &[u8]) -> Result<Via, ()> {
        parse(s, Span::new(0, s.len()))
    }

    fn text(buf: &[u8], s: Span) -> &str {
        std::str::from_utf8(s.get(buf)).unwrap()
    }

    #[test]
    fn plain() {
        let b = b"SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK776;rport;received=10.0.0.1";
        let v = via(b).unwrap();
        assert_eq!(text(b, v.value), std::str::from_utf8(b).unwrap());
        assert_eq!(text(b, v.transport), "UDP");
        assert_eq!(text(b, v.host), "192.0.2.1");
        assert_eq!(v.port, Some(5062));
        assert_eq!(text(b, v.branch.unwrap()), "z9hG4bK776");
        assert_eq!(text(b, v.received.unwrap()), "10.0.0.1");
        assert!(matches!(v.rport, Rport::Empty(s) if text(b, s) == "rport"));
        assert_eq!(v.params_end as usize, b.len());
    }

    #[test]
    fn lws_everywhere() {
        let b = b"  SIP  /   2.0\r\n /UDP\r\n    192.0.2.2 : 5060 ;\r\n  branch  =   z9hG4bK9ikj8  ; rport = 7 ";
        let v = via(b).unwrap();
        assert_eq!(text(b, v.transport), "UDP");
        assert_eq!(text(b, v.host), "192.0.2.2");
        assert_eq!(v.port, Some(5060));
        assert_eq!(text(b, v.branch.unwrap()), "z9hG4bK9ikj8");
        assert_eq!(v.rport, Rport::Value(7));
        assert_eq!(&b[..v.params_end as usize], &b[..b.len() - 1]);
    }

    #[test]
    fn ipv6_and_params_end() {
        let b = b"SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3";
        let v = via(b).unwrap();
        assert_eq!(text(b, v.host), "[2001:db8::9:1]");
        assert_eq!(text(b, v.received.unwrap()), "2001:db8::9:255");
        let b = b"SIP/2.0/TCP [2001:db8::9:1]:6050;received=[2001:db8::9:255]";
        let v = via(b).unwrap();
        assert_eq!(v.port, Some(6050));
        assert_eq!(text(b, v.received.unwrap()), "[2001:db8::9:255]");
        let b = b"SIP/2.0/UDP host.example.com  ";
        let v = via(b).unwrap();
        assert_eq!(v.params_end, 28);
        assert_eq!(v.branch, None);
    }

    #[test]
    fn overload_control_parameters() {
        let b = b"SIP/2.0/UDP p1.example.net;branch=z9hG4bK2d4790.1;OC;oc-algo=\"loss,A\";x=1";
        let v = via(b).unwrap();
        assert_eq!(text(b, v.oc.unwrap()), ";OC");
        assert_eq!(text(b, v.oc_others[0].unwrap()), ";oc-algo=\"loss,A\"");
        assert_eq!(v.oc_others[1..], [None, None]);
        let b = b"SIP/2.0/UDP h ; oc = 20 ;oc-seq=1282321615.782;oc-validity=500;ocx";
        let v = via(b).unwrap();
        assert_eq!(text(b, v.oc.unwrap()), "; oc = 20");
        assert_eq!(text(b, v.oc_others[1].unwrap()), ";oc-validity=500");
        assert_eq!(text(b, v.oc_others[2].unwrap()), ";oc-seq=1282321615.782");
        assert_eq!(via(b"SIP/2.0/UDP h;branch=z9hG4bK1").unwrap().oc, None);
    }

    #[test]
    fn failures() {
        let bad: &[&[u8]] = &[
            b"",
            b"SIP/2.0/UDP 192.0.2.15;;",
            b";",
            b"SIP/2.0/UDP",
            b"SIP/2.0 UDP host",
            b"SIP/2.0/UDPhost",
            b"SIP/2.0/UDP host;branch",
            b"SIP/2.0/UDP host;branch=",
            b"SIP/2.0/UDP host:99999",
            b"SIP/2.0/UDP host:",
            b"SIP/2.0/UDP host junk",
            b"SIP/2.0/UDP host;rport=x",
            b"SIP/2.0/UDP [2001:db8::1;branch=x",
            b"SIP/2.0/UDP host;x=\"unterminated",
        ];
        for b in bad {
            assert_eq!(via(b), Err(()), "{}", String::from_utf8_lossy(b));
        }
    }
}
