//! SIP/SIPS/tel URI spans (RFC 3261 19.1, RFC 3966) without allocation.

use super::Span;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
///
/// sip/sips: `user[:password]@host[:port][;params][?headers]` with RFC 3261 25.1 character
/// classes (escapes must be `%HH`). The host is a name or IPv4 address of `[A-Za-z0-9._-]`, or
/// a bracketed IPv6 reference of hex digits, colons and dots (RFC 5118 4.10: any such
/// reference is accepted syntactically, `host_ip` decides whether it is an address). An
/// unbracketed IPv6 address (`sip:2001:db8::10`) fails: its second colon starts a port that
/// is not a number. tel: the number up to the first `;`. Any other scheme that is
/// syntactically a scheme is `Scheme::Other` with an opaque rest. White space, `<`, `>`,
/// `"` and control bytes fail for every scheme.
pub fn parse(buf: &[u8], span: Span) -> Result<Uri, UriError> {
    let s = span.get(buf);
    if s.is_empty() || s.len() != span.len() {
        return Err(UriError::Syntax);
    }
    let base = span.start as usize;
    let colon = s.iter().position(|&b| b == b':').ok_or(UriError::Syntax)?;
    let scheme = lex::sub(s, 0, colon);
    if !lex::is_scheme(scheme) {
        return Err(UriError::Syntax);
    }
    let rest = lex::sub(s, colon + 1, s.len());
    if rest.is_empty() || !lex::all_uric(rest) {
        return Err(UriError::Syntax);
    }
    let rest_at = base + colon + 1;
    if scheme.eq_ignore_ascii_case(b"sip") {
        parse_sip(Scheme::Sip, rest, rest_at)
    } else if scheme.eq_ignore_ascii_case(b"sips") {
        parse_sip(Scheme::Sips, rest, rest_at)
    } else if scheme.eq_ignore_ascii_case(b"tel") {
        let semi = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
        if semi == 0 {
            return Err(UriError::Syntax);
        }
        let end = rest_at + rest.len();
        Ok(Uri {
            scheme: Scheme::Tel,
            user: Some(Span::new(rest_at, rest_at + semi)),
            host: Span::new(end, end),
            port: None,
            params: Span::new(rest_at + semi, end),
            headers: None,
        })
    } else {
        let end = rest_at + rest.len();
        Ok(Uri {
            scheme: Scheme::Other,
            user: None,
            host: Span::new(end, end),
            port: None,
            params: Span::new(end, end),
            headers: None,
        })
    }
}

/// The part of a sip/sips URI after `sip:`; `at` is the offset of `r` in the buffer.
fn parse_sip(scheme: Scheme, r: &[u8], at: usize) -> Result<Uri, UriError> {
    // No '@' can occur outside the userinfo (params and headers do not allow it), so the
    // first '@' ends the userinfo even when the user part holds ';' or '?' (RFC 4475 semiuri).
    let mut i = 0;
    let mut user = None;
    if let Some(at_sign) = r.iter().position(|&b| b == b'@') {
        let userinfo = lex::sub(r, 0, at_sign);
        let user_end = userinfo
            .iter()
            .position(|&b| b == b':')
            .unwrap_or(userinfo.len());
        let user_bytes = lex::sub(userinfo, 0, user_end);
        let password = lex::sub(userinfo, user_end + 1, userinfo.len());
        if user_bytes.is_empty()
            || !lex::all_escaped(user_bytes, lex::USER)
            || !lex::all_escaped(password, lex::PASSWORD)
        {
            return Err(UriError::Syntax);
        }
        user = Some(Span::new(at, at + user_end));
        i = at_sign + 1;
    }
    let host_start = i;
    i = lex::host_end(r, i).ok_or(UriError::Syntax)?;
    let host = Span::new(at + host_start, at + i);
    let mut port = None;
    if lex::byte(r, i) == Some(b':') {
        let digits_end = lex::skip(r, i + 1, |b| b.is_ascii_digit());
        port = Some(lex::port(lex::sub(r, i + 1, digits_end)).ok_or(UriError::Syntax)?);
        i = digits_end;
    }
    let params_start = i;
    if lex::byte(r, i) == Some(b';') {
        i = lex::skip(r, i, |b| {
            lex::has(b, lex::PARAM) || b == b';' || b == b'=' || b == b'%'
        });
        if !lex::all_escaped(lex::sub(r, params_start, i), lex::PARAM | lex::SEMI_EQ) {
            return Err(UriError::Syntax);
        }
    }
    let params = Span::new(at + params_start, at + i);
    let mut headers = None;
    if lex::byte(r, i) == Some(b'?') {
        let h = lex::sub(r, i + 1, r.len());
        if !lex::all_escaped(h, lex::HNV | lex::AMP_EQ) {
            return Err(UriError::Syntax);
        }
        headers = Some(Span::new(at + i + 1, at + r.len()));
        i = r.len();
    }
    if i != r.len() {
        return Err(UriError::Syntax);
    }
    Ok(Uri {
        scheme,
        user,
        host,
        port,
        params,
        headers,
    })
}

/// From a name-addr or addr-spec header value (`"Bob" <sip:bob@h>;tag=x` or `sip:bob@h;tag=x`),
/// the span of the URI itself (inside the <> if present) and the span of the header
/// parameters after it (starting at ';', possibly empty).
///
/// Fails on: an unterminated quoted display name, a quoted display name not followed by `<`,
/// an unquoted display name holding `,`, `;`, `"`, `>`, `\` or a control byte (RFC 4475
/// baddn), a missing `>`, an empty URI or white space inside `<>` (badaspec), an addr-spec
/// without a scheme, and anything but parameters after the URI. The URI itself is not
/// parsed (use `parse`).
pub fn name_addr(buf: &[u8], value: Span) -> Result<(Span, Span), UriError> {
    let s = value.get(buf);
    if s.len() != value.len() {
        return Err(UriError::Syntax);
    }
    let base = value.start as usize;
    let end = lex::trim_end(s, 0, s.len());
    let mut i = lex::skip_lws(s, 0);
    let lt = match lex::byte(s, i) {
        None => return Err(UriError::Syntax),
        Some(b'"') => {
            i = lex::quoted_end(s, i).ok_or(UriError::Syntax)?;
            i = lex::skip_lws(s, i);
            if lex::byte(s, i) != Some(b'<') {
                return Err(UriError::Syntax);
            }
            Some(i)
        }
        Some(_) => {
            let mut j = i;
            loop {
                match lex::byte(s, j) {
                    None => return Err(UriError::Syntax),
                    Some(b'<') => break Some(j),
                    Some(b':') => {
                        // addr-spec: what precedes the colon must be a scheme.
                        if !lex::is_scheme(lex::sub(s, i, j)) {
                            return Err(UriError::Syntax);
                        }
                        break None;
                    }
                    Some(b) if lex::is_ctl(b) && !lex::is_lws(b) => return Err(UriError::Syntax),
                    Some(b',' | b';' | b'"' | b'>' | b'\\') => return Err(UriError::Syntax),
                    Some(_) => j += 1,
                }
            }
        }
    };
    let (uri_start, uri_end, after) = match lt {
        Some(lt) => {
            let gt = lex::find(s, lt + 1, b'>').ok_or(UriError::Syntax)?;
            let inside = lex::sub(s, lt + 1, gt);
            let bad = inside
                .iter()
                .fold(false, |a, &b| a | lex::is_lws(b) | (b == b'<'));
            if inside.is_empty() || bad {
                return Err(UriError::Syntax);
            }
            (lt + 1, gt, gt + 1)
        }
        None => {
            let e = lex::skip(s, i, |b| !(lex::is_lws(b) || b == b';'));
            (i, e, e)
        }
    };
    let p = lex::skip_lws(s, after);
    if p < end && lex::byte(s, p) != Some(b';') {
        return Err(UriError::Syntax);
    }
    let p = p.min(end);
    Ok((
        Span::new(base + uri_start, base + uri_end),
        Span::new(base + p, base + end),
    ))
}

/// Find parameter `name` (case-insensitive) in a `;a=b;c` parameter list.
/// `None`: absent. `Some(None)`: present without a value. `Some(Some(v))`: its value span.
///
/// LWS (including folded line ends) is allowed around `;` and `=`; a quoted value keeps
/// its quotes in the span. The first occurrence wins.
pub fn param(buf: &[u8], params: Span, name: &[u8]) -> Option<Option<Span>> {
    let s = params.get(buf);
    let base = params.start as usize;
    let mut i = 0;
    loop {
        i = lex::skip_lws(s, i);
        if lex::byte(s, i) == Some(b';') {
            i = lex::skip_lws(s, i + 1);
        }
        if i >= s.len() {
            return None;
        }
        let name_start = i;
        i = lex::skip(s, i, lex::is_token);
        let this = lex::sub(s, name_start, i);
        let mut value = None;
        let mut j = lex::skip_lws(s, i);
        if lex::byte(s, j) == Some(b'=') {
            j = lex::skip_lws(s, j + 1);
            let v_start = j;
            j = if lex::byte(s, j) == Some(b'"') {
                lex::quoted_end(s, j).unwrap_or(s.len())
            } else {
                lex::skip(s, j, |b| !(lex::is_lws(b) || b == b';'))
            };
            value = Some(Span::new(base + v_start, base + j));
            i = j;
        }
        if !this.is_empty() && this.eq_ignore_ascii_case(name) {
            return Some(value);
        }
        // Skip anything malformed up to the next ';' outside quotes.
        while let Some(b) = lex::byte(s, i) {
            match b {
                b';' => break,
                b'"' => i = lex::quoted_end(s, i).unwrap_or(s.len()),
                _ => i += 1,
            }
        }
        if i == name_start {
            i += 1;
        }
    }
}

/// The IP address of a host span (IPv4 dotted quad or bracketed IPv6); `None` for names.
///
/// Also reads an unbracketed IPv6 address (a Via `received` value may be written either
/// way, RFC 5118 4.5) and tolerates the three-colon form `2001:db8:::192.0.2.1` as
/// `2001:db8::192.0.2.1` (RFC 5118 4.10).
pub fn host_ip(buf: &[u8], host: Span) -> Option<IpAddr> {
    let s = host.get(buf);
    let inner = match (s.first(), s.last()) {
        (Some(b'['), Some(b']')) => lex::sub(s, 1, s.len() - 1),
        _ if s.contains(&b':') => s,
        _ => {
            let text = std::str::from_utf8(s).ok()?;
            return text.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
        }
    };
    if inner.is_empty() || inner.len() > 64 {
        return None;
    }
    let text = std::str::from_utf8(inner).ok()?;
    if let Ok(a) = text.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(a));
    }
    // RFC 5118 4.10: "2001:db8:::192.0.2.1" means "2001:db8::192.0.2.1".
    let triple = inner.windows(3).position(|w| w == b":::")?;
    let mut fixed = [0u8; 64];
    let head = lex::sub(inner, 0, triple + 2);
    let tail = lex::sub(inner, triple + 3, inner.len());
    let out = fixed.get_mut(..head.len() + tail.len())?;
    let (a, b) = out.split_at_mut(head.len());
    a.copy_from_slice(head);
    b.copy_from_slice(tail);
    let text = std::str::from_utf8(out).ok()?;
    text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// Character classes and small cursor helpers shared by the scanner, `via` and this module.
/// Every helper takes positions that may lie past the end and never panics.
pub(crate) mod lex {
    pub const TOKEN: u16 = 1;
    /// RFC 3261 `unreserved` (alphanum / mark).
    pub const UNRESERVED: u16 = 2;
    /// `user-unreserved`: & = + $ , ; ? /
    const USER_EXTRA: u16 = 4;
    /// Password extras: & = + $ ,
    const PASSWORD_EXTRA: u16 = 8;
    /// `param-unreserved`: [ ] / : & + $
    const PARAM_EXTRA: u16 = 16;
    /// `hnv-unreserved`: [ ] / ? : + $
    const HNV_EXTRA: u16 = 32;
    /// Host name and IPv4 characters.
    pub const HOST: u16 = 128;
    /// IPv6 reference characters (inside brackets).
    pub const HEX_COLON: u16 = 256;
    pub const SEMI_EQ: u16 = 512;
    pub const AMP_EQ: u16 = 1024;
    pub const USER: u16 = UNRESERVED | USER_EXTRA;
    pub const PASSWORD: u16 = UNRESERVED | PASSWORD_EXTRA;
    pub const PARAM: u16 = UNRESERVED | PARAM_EXTRA;
    pub const HNV: u16 = UNRESERVED | HNV_EXTRA;

    const fn table() -> [u16; 256] {
        let mut t = [0u16; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            let mut f = 0;
            if c.is_ascii_alphanumeric() {
                f |= TOKEN | UNRESERVED | HOST;
            }
            if matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            ) {
                f |= TOKEN;
            }
            if matches!(
                c,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            ) {
                f |= UNRESERVED;
            }
            if matches!(c, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
                f |= USER_EXTRA;
            }
            if matches!(c, b'&' | b'=' | b'+' | b'$' | b',') {
                f |= PASSWORD_EXTRA;
            }
            if matches!(c, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
                f |= PARAM_EXTRA;
            }
            if matches!(c, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$') {
                f |= HNV_EXTRA;
            }
            // '_' is not in RFC 1034 host names but is common in internal DNS names that
            // trunks put in Via and Contact; refusing it would refuse working peers.
            if matches!(c, b'-' | b'.' | b'_') {
                f |= HOST;
            }
            if c.is_ascii_hexdigit() || c == b':' || c == b'.' {
                f |= HEX_COLON;
            }
            if matches!(c, b';' | b'=') {
                f |= SEMI_EQ;
            }
            if matches!(c, b'&' | b'=') {
                f |= AMP_EQ;
            }
            t[b] = f;
            b += 1;
        }
        t
    }

    static CLASS: [u16; 256] = table();

    #[inline]
    pub fn has(b: u8, class: u16) -> bool {
        CLASS[b as usize] & class != 0
    }

    #[inline]
    pub fn is_token(b: u8) -> bool {
        has(b, TOKEN)
    }

    /// SP, HT, CR, LF: white space inside a header value that may have been folded.
    #[inline]
    pub fn is_lws(b: u8) -> bool {
        matches!(b, b' ' | b'\t' | b'\r' | b'\n')
    }

    #[inline]
    pub fn is_ctl(b: u8) -> bool {
        b < 0x20 || b == 0x7f
    }

    /// Any byte that is a control character or SP (branch-free so it vectorises).
    #[inline]
    pub fn any_ctl_or_space(s: &[u8]) -> bool {
        s.iter().fold(false, |a, &b| a | (b <= b' ') | (b == 0x7f))
    }

    /// All bytes may appear anywhere in a URI: visible ASCII except `<`, `>`, `"`
    /// (branch-free so it vectorises).
    #[inline]
    pub fn all_uric(s: &[u8]) -> bool {
        !s.iter().fold(false, |a, &b| {
            a | (b <= b' ') | (b >= 0x7f) | (b == b'<') | (b == b'>') | (b == b'"')
        })
    }

    #[inline]
    pub fn byte(s: &[u8], i: usize) -> Option<u8> {
        s.get(i).copied()
    }

    /// `s[a..b]`, or empty when out of range.
    #[inline]
    pub fn sub(s: &[u8], a: usize, b: usize) -> &[u8] {
        s.get(a..b).unwrap_or(&[])
    }

    /// First index at or after `i` whose byte fails `keep` (or `s.len()`).
    #[inline]
    pub fn skip(s: &[u8], mut i: usize, keep: impl Fn(u8) -> bool) -> usize {
        while let Some(&b) = s.get(i) {
            if !keep(b) {
                return i;
            }
            i += 1;
        }
        i.max(s.len())
    }

    #[inline]
    pub fn skip_lws(s: &[u8], i: usize) -> usize {
        skip(s, i, is_lws)
    }

    /// `end` moved back over LWS, not below `start`.
    #[inline]
    pub fn trim_end(s: &[u8], start: usize, mut end: usize) -> usize {
        while end > start && s.get(end - 1).is_some_and(|&b| is_lws(b)) {
            end -= 1;
        }
        end
    }

    #[inline]
    pub fn find(s: &[u8], from: usize, needle: u8) -> Option<usize> {
        memchr::memchr(needle, s.get(from..)?).map(|p| p + from)
    }

    /// `s[i]` is `"`: the index just after the closing quote (backslash escapes any byte).
    pub fn quoted_end(s: &[u8], i: usize) -> Option<usize> {
        let mut j = i + 1;
        loop {
            match s.get(j)? {
                b'"' => return Some(j + 1),
                b'\\' => j += 2,
                _ => j += 1,
            }
        }
    }

    /// RFC 3261 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
    pub fn is_scheme(s: &[u8]) -> bool {
        match s.split_first() {
            Some((first, rest)) => {
                first.is_ascii_alphabetic()
                    && rest
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            }
            None => false,
        }
    }

    /// All bytes in `class`, `%` only as the start of a `%HH` escape.
    pub fn all_escaped(s: &[u8], class: u16) -> bool {
        let mut i = 0;
        while let Some(&b) = s.get(i) {
            if b == b'%' {
                let hex = |k: usize| s.get(k).is_some_and(|c| c.is_ascii_hexdigit());
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
            } else if has(b, class) {
                i += 1;
            } else {
                return false;
            }
        }
        true
    }

    /// A host starting at `i`: a name / IPv4 address, or `[` IPv6 reference `]`.
    /// Returns the index after it; `None` if there is no host.
    pub fn host_end(s: &[u8], i: usize) -> Option<usize> {
        if byte(s, i) == Some(b'[') {
            let close = find(s, i + 1, b']')?;
            let inner = sub(s, i + 1, close);
            if inner.is_empty()
                || !inner.contains(&b':')
                || !inner.iter().all(|&b| has(b, HEX_COLON))
            {
                return None;
            }
            Some(close + 1)
        } else {
            let e = skip(s, i, |b| has(b, HOST));
            (e > i).then_some(e)
        }
    }

    /// All digits (at least one): the value, saturating at u64::MAX.
    pub fn digits(s: &[u8]) -> Option<u64> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(s.iter().fold(0u64, |n, &d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        }))
    }

    /// A port: 1 to 5 digits, at most 65535.
    pub fn port(digits: &[u8]) -> Option<u16> {
        if digits.is_empty() || digits.len() > 5 {
            return None;
        }
        let mut v: u32 = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(d - b'0');
        }
        u16::try_from(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(s: &[u8]) -> Span {
        Span::new(0, s.len())
    }

    fn text(buf: &[u8], s: Span) -> &str {
        std::str::from_utf8(s.get(buf)).unwrap()
    }

    #[test]
    fn sip_uri_parts() {
        let b = b"sip:alice:pw@example.com:5070;transport=tcp;lr?subject=hi";
        let u = parse(b, whole(b)).unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(text(b, u.user.unwrap()), "alice");
        assert_eq!(text(b, u.host), "example.com");
        assert_eq!(u.port, Some(5070));
        assert_eq!(text(b, u.params), ";transport=tcp;lr");
        assert_eq!(text(b, u.headers.unwrap()), "subject=hi");
    }

    #[test]
    fn schemes_and_failures() {
        let ok: &[(&[u8], Scheme)] = &[
            (b"SIPS:bob@[2001:db8::1]:5061", Scheme::Sips),
            (b"tel:+1-201-555-0123;phone-context=x", Scheme::Tel),
            (b"nobodyKnowsThisScheme:totallyopaquecontent", Scheme::Other),
            (b"soap.beep://192.0.2.103:3002", Scheme::Other),
            (b"sip:user;par=u%40example.net@example.com", Scheme::Sip),
            (b"sip:[2001:db8:::192.0.2.1]", Scheme::Sip),
            (b"sip:example.com", Scheme::Sip),
        ];
        for (u, scheme) in ok {
            assert_eq!(
                parse(u, whole(u)).map(|u| u.scheme),
                Ok(*scheme),
                "{}",
                String::from_utf8_lossy(u)
            );
        }
        let bad: &[&[u8]] = &[
            b"",
            b"sip:",
            b"<sip:a@b>",
            b"sip:a@b c",
            b"sip:2001:db8::10",
            b"sip:a@",
            b"sip:@host",
            b"sip:a@host:99999",
            b"sip:a%zz@host",
            b"1sip:x",
            b"sip:a@[]",
            b"sip:a@[zz::1]",
            b"sip:a@b\"c",
        ];
        for u in bad {
            assert_eq!(
                parse(u, whole(u)),
                Err(UriError::Syntax),
                "{}",
                String::from_utf8_lossy(u)
            );
        }
    }

    #[test]
    fn name_addr_forms() {
        let cases: &[(&[u8], &str, &str)] = &[
            (
                b"\"Bob \\\"B\\\"\" <sip:bob@h>;tag=x",
                "sip:bob@h",
                ";tag=x",
            ),
            (b"sip:bob@h;tag=x", "sip:bob@h", ";tag=x"),
            (b"sip:bob@h ;  tag = x", "sip:bob@h", ";  tag = x"),
            (
                b"caller<sip:caller@example.com>;tag=323",
                "sip:caller@example.com",
                ";tag=323",
            ),
            (b"<sip:a@b>", "sip:a@b", ""),
            (b"token1~` token2'+_ <sip:m@e.com>", "sip:m@e.com", ""),
            (b"isbn:2983792873", "isbn:2983792873", ""),
        ];
        for (v, uri, params) in cases {
            let (u, p) = name_addr(v, whole(v)).unwrap();
            assert_eq!(text(v, u), *uri);
            assert_eq!(text(v, p), *params);
        }
        let bad: &[&[u8]] = &[
            b"\"Mr. J. User <sip:j.user@example.com>",
            b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            b"< sip:t.watson@example.org >",
            b"<sip:a@b",
            b"<>",
            b"",
            b"nobody",
            b"\"x\" sip:a@b",
            b"sip:a@b junk",
        ];
        for v in bad {
            assert!(
                name_addr(v, whole(v)).is_err(),
                "{}",
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn params() {
        let b = b";   tag    = 1918181833n ;lr; x=\"a;b\" ;Y";
        assert_eq!(
            param(b, whole(b), b"TAG").map(|v| text(b, v.unwrap())),
            Some("1918181833n")
        );
        assert_eq!(param(b, whole(b), b"lr"), Some(None));
        assert_eq!(
            param(b, whole(b), b"x").map(|v| text(b, v.unwrap())),
            Some("\"a;b\"")
        );
        assert_eq!(param(b, whole(b), b"y"), Some(None));
        assert_eq!(param(b, whole(b), b"b"), None);
        assert_eq!(param(b"", Span::EMPTY, b"tag"), None);
        let f = b"\r\n  ;\r\n  tag = 98asjd8";
        assert_eq!(
            param(f, whole(f), b"tag").map(|v| text(f, v.unwrap())),
            Some("98asjd8")
        );
    }

    #[test]
    fn host_ips() {
        let ip = |s: &[u8]| host_ip(s, whole(s));
        assert_eq!(ip(b"[2001:db8::10]"), Some("2001:db8::10".parse().unwrap()));
        assert_eq!(
            ip(b"2001:db8::9:255"),
            Some("2001:db8::9:255".parse().unwrap())
        );
        assert_eq!(
            ip(b"[2001:db8:::192.0.2.1]"),
            Some("2001:db8::192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            ip(b"[::ffff:192.0.2.2]"),
            Some("::ffff:192.0.2.2".parse().unwrap())
        );
        assert_eq!(ip(b"192.0.2.1"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(ip(b"example.com"), None);
        assert_eq!(ip(b"[example]"), None);
        assert_eq!(ip(b""), None);
    }
}
