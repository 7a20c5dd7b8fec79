//! `junction reload`: ask the running junction to reload its configuration, `POST /reload` on
//! its management address, and say whether it did. Exit 0 reloaded (2xx; the server's report
//! on stdout), 1 refused (any other status; the server's reason on stderr: the running
//! configuration stays), 2 the server could not be asked (no address, nothing listening).
//! systemd's `ExecReload=` runs it, so `systemctl reload junction` fails when junction
//! refused the file.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use super::args::ReloadArgs;

pub fn run(args: &ReloadArgs) -> ExitCode {
    let addr = match args.metrics {
        Some(addr) => addr,
        None => match address_of(&args.config) {
            Ok(addr) => addr,
            Err(message) => {
                eprintln!("junction: {message}");
                return ExitCode::from(2);
            }
        },
    };
    let timeout = Duration::from_secs(args.timeout.max(1));
    match post(reachable(addr), "/reload", timeout) {
        Ok((status, body)) if (200..300).contains(&status) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            let body = body.trim_end();
            eprintln!("junction: reload refused by {addr} (HTTP {status}); the running configuration stays:");
            eprintln!("{body}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("junction: cannot ask {addr} to reload: {e}");
            ExitCode::from(2)
        }
    }
}

/// The `[server] metrics` address of the configuration file.
fn address_of(file: &str) -> Result<SocketAddr, String> {
    let (config, _) = super::load(Some(file)).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!(
            "{}\n(the file has problems, so a reload would be refused; \
             give --metrics ADDR to ask anyway)",
            lines.join("\n")
        )
    })?;
    config.server.metrics.ok_or_else(|| {
        format!(
            "{file}: server.metrics: not set, so junction serves no POST /reload; \
             set it (like \"127.0.0.1:9090\") and restart, or send SIGHUP (kill -HUP PID)"
        )
    })
}

/// A server listening on every address (0.0.0.0, ::) is asked on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// One HTTP/1.1 POST with an empty body; the status and the body. Written out here rather
/// than taking an HTTP client crate: one request to a management port on loopback or a
/// management network, no TLS, no redirects, no keep-alive (`Connection: close`, so the body
/// ends where the stream does, or at Content-Length, or chunked).
pub fn post(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\
         User-Agent: junction-reload/{}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes())?;
    // Read until the response is whole (a server may keep the connection open despite
    // `Connection: close`), or the server closes it.
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while parse_response(&raw).is_none() || !complete(&raw) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // Some servers reset the connection after answering; keep what came.
            Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not an HTTP response: {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            ),
        )
    })
}

/// Whether `raw` holds a whole response by its own framing (Content-Length, or the last
/// chunk); without either, the body ends when the server closes the connection.
fn complete(raw: &[u8]) -> bool {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let body = &raw[head_end + 4..];
    if head.contains("transfer-encoding: chunked") {
        return dechunk(body).is_some();
    }
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|n| body.len() >= n)
}

/// Status and body of a whole HTTP/1.x response.
fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..head_end)?).ok()?;
    let body = raw.get(head_end + 4..)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else {
        match length {
            Some(n) => body.get(..n)?.to_vec(),
            None => body.to_vec(),
        }
    };
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(rest.get(..line_end)?).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = rest.get(line_end + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_length_without_length_and_chunked() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nreloaded\nextra";
        assert_eq!(parse_response(ok), Some((200, "reloaded\n".into())));
        let closed = b"HTTP/1.0 422 Unprocessable Entity\r\n\r\nf:3: x: bad\n";
        assert_eq!(parse_response(closed), Some((422, "f:3: x: bad\n".into())));
        let chunked =
            b"HTTP/1.1 500 Internal\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((500, "abcde".into())));
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n"), None);
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nabc";
        assert_eq!(parse_response(short), None);
        assert!(complete(ok));
        assert!(!complete(short));
        assert!(complete(chunked));
        assert!(!complete(&chunked[..chunked.len() - 5]));
        // No framing: only the end of the stream says the body is whole.
        assert!(!complete(closed));
    }

    #[test]
    fn unspecified_addresses_are_asked_on_loopback() {
        let any: SocketAddr = "0.0.0.0:9090".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reachable(any).to_string(), "127.0.0.1:9090");
        let any6: SocketAddr = "[::]:9090".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reachable(any6).to_string(), "[::1]:9090");
        let lan: SocketAddr = "10.0.0.5:9090".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reachable(lan), lan);
    }
}
