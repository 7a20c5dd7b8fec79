//! `junction trunks`: the trunks of a running junction, and taking one out of service and
//! back, through its management port (`GET /trunks`, `POST /trunks/NAME/disable|enable`,
//! served by `control::trunk_control`).
//!
//! ```text
//! junction trunks [--metrics HOST:PORT | --config FILE] [--json]
//! junction trunks [...] disable NAME | enable NAME | show NAME
//! ```
//!
//! The address is `--metrics`, else the `[server] metrics` of `--config FILE`, else
//! 127.0.0.1:9090 (the default management address, on loopback).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

pub const USAGE: &str = "  junction trunks [--metrics HOST:PORT | --config FILE] [--json]
                              the trunks of a running junction: health, why down,
                              limits, calls (GET /trunks on its management port)
  junction trunks [...] disable NAME | enable NAME | show NAME
                              take a trunk out of service (new calls skip it, calls up
                              continue; kept across reloads) or back; show one trunk
";

/// The default management address (`[server] metrics` of the embedded default).
const DEFAULT_ADDR: &str = "127.0.0.1:9090";

/// How long to wait for the running junction.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What to do.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    List,
    Show(String),
    Disable(String),
    Enable(String),
}

#[derive(Debug, PartialEq, Eq)]
struct Args {
    addr: Option<String>,
    config: Option<String>,
    json: bool,
    action: Action,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut addr = None;
    let mut config = None;
    let mut json = false;
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--metrics" => addr = Some(it.next().ok_or("--metrics needs HOST:PORT")?.clone()),
            "--config" | "-c" => config = Some(it.next().ok_or("--config needs a file")?.clone()),
            "--json" => json = true,
            s if s.starts_with("--") => return Err(format!("trunks: unknown option {s}")),
            _ => words.push(a.clone()),
        }
    }
    let action = match words.as_slice() {
        [] => Action::List,
        [w] if w == "list" => Action::List,
        [w, name] if w == "show" => Action::Show(name.clone()),
        [w, name] if w == "disable" => Action::Disable(name.clone()),
        [w, name] if w == "enable" => Action::Enable(name.clone()),
        _ => {
            return Err(format!(
            "trunks: expected nothing, list, show NAME, disable NAME or enable NAME; found {:?}",
            words.join(" ")
        ))
        }
    };
    Ok(Args {
        addr,
        config,
        json,
        action,
    })
}

/// The management address to talk to.
fn address(args: &Args) -> Result<SocketAddr, String> {
    let text = match (&args.addr, &args.config) {
        (Some(a), _) => a.clone(),
        (None, Some(file)) => {
            let (config, _) = super::load(Some(file)).map_err(|errors| {
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
            match config.server.metrics {
                Some(a) => a.to_string(),
                None => {
                    return Err(format!(
                        "{file}: [server] metrics is off: no management port"
                    ))
                }
            }
        }
        (None, None) => DEFAULT_ADDR.to_string(),
    };
    text.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("{text:?} is not HOST:PORT"))
}

/// One HTTP/1.1 request; the status and body of the answer.
fn request(addr: SocketAddr, method: &str, path: &str) -> Result<(u16, String), String> {
    let fail = |e: std::io::Error| format!("http://{addr}{path}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(fail)?;
    s.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
    s.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(fail)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("http://{addr}{path}: not an HTTP answer"))?;
    Ok((status, body.to_string()))
}

/// One line per trunk: name, state, why down, calls.
fn table(body: &str) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("bad JSON: {e}"))?;
    let list: Vec<&serde_json::Value> = match v.get("trunks").and_then(|t| t.as_array()) {
        Some(a) => a.iter().collect(),
        None => vec![&v],
    };
    let mut out = format!(
        "{:<20} {:<9} {:<12} {:>6} {:>6} {:>6}  send_to\n",
        "trunk", "state", "why", "calls", "early", "in"
    );
    for t in list {
        let s = |k: &str| t.get(k).and_then(|x| x.as_str()).unwrap_or("-").to_string();
        let n = |k: &str| t.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        let b = |k: &str| t.get(k).and_then(|x| x.as_bool()).unwrap_or(false);
        let (state, why) = if b("disabled") {
            ("disabled", "operator".to_string())
        } else if b("up") {
            ("up", "-".to_string())
        } else {
            ("down", s("down_cause"))
        };
        out.push_str(&format!(
            "{:<20} {:<9} {:<12} {:>6} {:>6} {:>6}  {}\n",
            s("name"),
            state,
            why,
            n("calls_active"),
            n("early_dialogs"),
            n("calls_in_active"),
            s("send_to")
        ));
    }
    Ok(out)
}

/// Run `junction trunks ARGS`: 0 on success, 1 when junction refused or could not be
/// reached, 2 for bad arguments.
pub fn run(args: &[String]) -> ExitCode {
    let args = match parse(args) {
        Ok(a) => a,
        Err(m) => {
            eprintln!("junction: {m}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let addr = match address(&args) {
        Ok(a) => a,
        Err(m) => {
            eprintln!("junction: {m}");
            return ExitCode::from(2);
        }
    };
    let (method, path) = match &args.action {
        Action::List => ("GET", "/trunks".to_string()),
        Action::Show(n) => ("GET", format!("/trunks/{n}")),
        Action::Disable(n) => ("POST", format!("/trunks/{n}/disable")),
        Action::Enable(n) => ("POST", format!("/trunks/{n}/enable")),
    };
    match request(addr, method, &path) {
        Ok((200, body)) if args.json => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Ok((200, body)) => match table(&body) {
            Ok(t) => {
                print!("{t}");
                ExitCode::SUCCESS
            }
            Err(m) => {
                eprintln!("junction: {m}");
                ExitCode::from(1)
            }
        },
        Ok((status, body)) => {
            eprintln!("junction: {method} {path}: {status} {}", body.trim_end());
            ExitCode::from(1)
        }
        Err(m) => {
            eprintln!("junction: {m} (is junction running with its management port there?)");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Args, String> {
        parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn arguments() {
        assert_eq!(args(&[]).map(|a| a.action), Ok(Action::List));
        let a = args(&["--metrics", "127.0.0.1:9999", "disable", "gw-a"]).expect("ok");
        assert_eq!(a.action, Action::Disable("gw-a".into()));
        assert_eq!(a.addr.as_deref(), Some("127.0.0.1:9999"));
        assert!(args(&["disable"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        assert_eq!(
            address(&args(&[]).expect("ok")),
            Ok(DEFAULT_ADDR.parse().expect("addr"))
        );
    }
}
