//! The one thing a load tester needs from a SIP URI: where to send. Host names are not resolved
//! (everything runs on IP literals); `None` means "no usable IP address in this URI".

use std::net::{IpAddr, SocketAddr};

/// The address of `sip:[user@]host[:port][;params]`, with `maddr` ignored and port 5060 by
/// default. IPv6 references in brackets. Also accepts a name-addr's contents (`<...>` stripped
/// by the caller).
pub fn uri_addr(uri: &[u8]) -> Option<SocketAddr> {
    let rest = uri
        .strip_prefix(b"sip:")
        .or_else(|| uri.strip_prefix(b"SIP:"))
        .or_else(|| uri.strip_prefix(b"sips:"))?;
    // userinfo ends at the last '@' before any ';', '?' or '>'.
    let stop = rest
        .iter()
        .position(|&b| b == b';' || b == b'?' || b == b'>')
        .unwrap_or(rest.len());
    let hostport = &rest[..stop];
    let hostport = match hostport.iter().rposition(|&b| b == b'@') {
        Some(at) => &hostport[at + 1..],
        None => hostport,
    };
    let text = std::str::from_utf8(hostport).ok()?;
    if let Some(v6) = text.strip_prefix('[') {
        let close = v6.find(']')?;
        let ip: IpAddr = v6[..close].parse().ok()?;
        let port = match v6[close + 1..].strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => 5060,
        };
        return Some(SocketAddr::new(ip, port));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (text, 5060),
    };
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = |s: &str| uri_addr(s.as_bytes()).map(|a| a.to_string());
        assert_eq!(a("sip:1.2.3.4"), Some("1.2.3.4:5060".into()));
        assert_eq!(
            a("sip:u@127.0.0.1:5070;transport=udp"),
            Some("127.0.0.1:5070".into())
        );
        assert_eq!(a("sip:127.0.0.2:5060;lr"), Some("127.0.0.2:5060".into()));
        assert_eq!(a("sip:u@[::1]:5062"), Some("[::1]:5062".into()));
        assert_eq!(a("sip:u@example.com"), None);
        assert_eq!(a("tel:+1234"), None);
        assert_eq!(a("sip:u@1.2.3.4:99999"), None);
    }
}
