//! Socket addresses in the configuration: `ip:port`, `[v6]:port`, or an IP alone with a
//! default port. Names are not resolved (a router must not depend on DNS to start).

use std::net::{IpAddr, SocketAddr};

/// Parse `ip:port`, `[v6]:port`, `ip` or `[v6]` (the last two get `default_port`).
pub fn socket_addr(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    let t = text.trim();
    let addr = if let Ok(sa) = t.parse::<SocketAddr>() {
        sa
    } else {
        let bare = t
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(t);
        match bare.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, default_port),
            Err(_) => return Err(not_an_address(t)),
        }
    };
    if addr.port() == 0 {
        return Err(format!("{t}: port 0 is not a usable port"));
    }
    Ok(addr)
}

fn not_an_address(t: &str) -> String {
    if t.is_empty() {
        "empty; write an address like \"192.0.2.10:5060\"".into()
    } else if t.contains("::") || t.matches(':').count() > 1 {
        format!(
            "{t:?} is not a valid address; an IPv6 address with a port goes in brackets: \"[2001:db8::1]:5060\""
        )
    } else if t.chars().any(|c| c.is_ascii_alphabetic()) {
        format!("{t:?} looks like a host name; write an IP address (names are not resolved)")
    } else {
        format!("{t:?} is not an address; write ip:port like \"192.0.2.10:5060\"")
    }
}

/// Where calls are sent: a unicast address.
pub fn destination(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    let addr = socket_addr(text, default_port)?;
    let ip = addr.ip();
    if ip.is_unspecified() {
        return Err(format!(
            "{}: the \"any address\" cannot be sent to; write the peer's own address",
            text.trim()
        ));
    }
    if ip.is_multicast() {
        return Err(format!(
            "{}: a multicast address cannot be a SIP peer",
            text.trim()
        ));
    }
    Ok(addr)
}

/// The transport of a `listen` entry and the rest of it.
pub fn split_transport(text: &str) -> Result<&str, String> {
    let t = text.trim();
    let Some((scheme, rest)) = t.split_once(':') else {
        return Ok(t);
    };
    match scheme.to_ascii_lowercase().as_str() {
        "udp" => Ok(rest),
        "tcp" | "tls" | "ws" | "wss" | "sctp" => Err(format!(
            "{scheme} is not supported yet: this version of junction listens on UDP only \
             (write \"udp:{rest}\")"
        )),
        _ => Ok(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_default_and_brackets_work() {
        assert_eq!(
            socket_addr("192.0.2.1", 5060).map(|a| a.to_string()),
            Ok("192.0.2.1:5060".into())
        );
        assert_eq!(
            socket_addr("[2001:db8::1]", 5060).map(|a| a.to_string()),
            Ok("[2001:db8::1]:5060".into())
        );
        assert_eq!(
            socket_addr("2001:db8::1", 5060).map(|a| a.to_string()),
            Ok("[2001:db8::1]:5060".into())
        );
        assert_eq!(
            socket_addr("192.0.2.1:5080", 5060).map(|a| a.to_string()),
            Ok("192.0.2.1:5080".into())
        );
        assert!(socket_addr("192.0.2.1:0", 5060).is_err());
        assert!(socket_addr("gw.example.net:5060", 5060).is_err());
        assert!(destination("0.0.0.0:5060", 5060).is_err());
        assert!(destination("239.0.0.1:5060", 5060).is_err());
    }

    #[test]
    fn only_udp_is_accepted() {
        assert_eq!(split_transport("udp:127.0.0.1:5060"), Ok("127.0.0.1:5060"));
        assert_eq!(split_transport("UDP:[::1]:5060"), Ok("[::1]:5060"));
        assert_eq!(split_transport("127.0.0.1:5060"), Ok("127.0.0.1:5060"));
        assert_eq!(split_transport("::1"), Ok("::1"));
        let e = split_transport("tcp:127.0.0.1:5060")
            .err()
            .unwrap_or_default();
        assert!(e.contains("not supported yet"), "{e}");
    }
}
