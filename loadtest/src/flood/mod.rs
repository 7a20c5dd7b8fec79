//! `junction-load flood`: floods a SIP server with junk and with valid requests from many
//! source addresses that are none of its peers, at a paced rate, while counting what comes
//! back (an unknown source should get nothing: replies are amplification).
//!
//! The datagrams are built before the run (`payload`), sent in `sendmmsg` batches from one
//! non-blocking socket per source address, round robin, and paced per batch; the replies are
//! read from every socket without blocking between batches (`run`).

pub mod payload;
pub mod run;

use crate::limits::WORKERS_MAX;
use crate::time::{Micros, MS, SEC};
use payload::{Kind, KINDS};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

pub use run::{run, Outcome};

pub const USAGE: &str = "\
junction-load flood: junk and valid requests from unknown sources, to test a server's defences.

usage:
  junction-load flood --target IP:PORT --duration S [options]

options:
  --target IP:PORT        where the datagrams go (IPv4)
  --duration S            how long to send (seconds)
  --rate N                datagrams per second, whole process; 0: as fast as it can  [10000]
  --sources CIDR          the source addresses are taken from this IPv4 network, from its
                          first host address on; never a network the server trusts
                                                                          [127.1.0.0/16]
  --source-count N        distinct source addresses, one socket each      [256]
  --mix invite=W,junk=W,mutated=W,options=W
                          weights of the kinds of datagram (kinds left out weigh 0):
                            invite   a well-formed INVITE, unique Call-ID, branch and tag
                            junk     random bytes, 1 to 1400 of them, NULs included
                            mutated  an INVITE with flipped bytes, cut short, a huge header
                                     twice, a bad Content-Length or Max-Forwards, or NULs
                            options  an OPTIONS ping as sipvicious' svmap sends it
                                                  [invite=50,junk=30,mutated=15,options=5]
  --number NUM            called number of the INVITEs                    [2125551234]
  --seed N                payloads are the same for the same seed         [1]
  --workers N             sending threads (the rate and the sources are split)  [1]
  --cpus LIST             pin thread i to the i-th CPU of LIST (e.g. 1)   [not pinned]
  --drain-ms MS           keep reading replies this long after the last send  [1000]
  --json FILE             write the final report as JSON
  --quiet                 no live line each second
";

/// The flood's command line.
#[derive(Clone, Debug)]
pub struct Plan {
    pub target: SocketAddr,
    pub duration: Micros,
    /// Datagrams per second, whole process; 0: unpaced.
    pub rate: f64,
    pub network: Ipv4Addr,
    pub prefix: u8,
    pub source_count: usize,
    /// Weights in `KINDS` order.
    pub mix: [u32; 4],
    pub number: String,
    pub seed: u64,
    pub workers: usize,
    pub cpus: Option<Vec<usize>>,
    pub drain: Micros,
    pub json: Option<PathBuf>,
    pub quiet: bool,
}

/// Highest --rate accepted (datagrams per second).
pub const FLOOD_RATE_MAX: f64 = 100_000_000.0;
/// Most source addresses (one socket each).
pub const SOURCES_MAX: usize = 65_536;

fn num<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{opt}: not a number: {v:?}"))
}

/// `a.b.c.d/len` (or one address: /32).
pub fn parse_cidr(v: &str) -> Result<(Ipv4Addr, u8), String> {
    let (ip, len) = v.split_once('/').unwrap_or((v, "32"));
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("--sources: not an IPv4 network: {v:?}"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|&l| l <= 32)
        .ok_or_else(|| format!("--sources: bad prefix length in {v:?} (0 to 32)"))?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    if u32::from(ip) & !mask != 0 {
        return Err(format!(
            "--sources: {v:?} has bits set after the prefix length"
        ));
    }
    Ok((ip, len))
}

/// `invite=50,junk=30,...`; kinds not named weigh 0.
pub fn parse_mix(v: &str) -> Result<[u32; 4], String> {
    let mut w = [0u32; 4];
    for part in v.split(',').filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("--mix: {part:?} is not KIND=WEIGHT"))?;
        let kind = Kind::from_name(name.trim()).ok_or_else(|| {
            format!("--mix: unknown kind {name:?} (invite, junk, mutated, options)")
        })?;
        let i = KINDS.iter().position(|&k| k == kind).unwrap_or(0);
        w[i] = num("--mix", weight.trim())?;
        if w[i] > 1_000_000 {
            return Err("--mix: a weight is at most 1000000".into());
        }
    }
    if w.iter().all(|&x| x == 0) {
        return Err("--mix: the weights add up to 0".into());
    }
    Ok(w)
}

impl Plan {
    /// Source address number `i` (0-based): the i-th host address of the network (the
    /// network address itself is skipped when the prefix leaves room).
    pub fn source(&self, i: usize) -> Ipv4Addr {
        let skip = u32::from(self.prefix < 31);
        Ipv4Addr::from(u32::from(self.network).wrapping_add(skip + i as u32))
    }

    /// Addresses usable in the network (without the network and broadcast addresses when
    /// the prefix leaves room for them).
    pub fn hosts(&self) -> u64 {
        let size = 1u64 << (32 - u32::from(self.prefix));
        if self.prefix < 31 {
            size - 2
        } else {
            size
        }
    }
}

/// Parse the options after `flood`. `Err("")` asks for the usage text.
pub fn parse(args: &[String]) -> Result<Plan, String> {
    let mut p = Plan {
        target: SocketAddr::from((Ipv4Addr::LOCALHOST, 5060)),
        duration: 0,
        rate: 10_000.0,
        network: Ipv4Addr::new(127, 1, 0, 0),
        prefix: 16,
        source_count: 256,
        mix: [50, 30, 15, 5],
        number: "2125551234".into(),
        seed: 1,
        workers: 1,
        cpus: None,
        drain: SEC,
        json: None,
        quiet: false,
    };
    let mut target = None;
    let mut duration = None;
    let mut it = args.iter();
    while let Some(opt) = it.next() {
        let opt = opt.as_str();
        let mut val = || {
            it.next()
                .map(String::as_str)
                .ok_or_else(|| format!("{opt}: a value is required"))
        };
        match opt {
            "--target" => {
                let v = val()?;
                let a: SocketAddr = v.parse().map_err(|_| {
                    format!("--target: not an IP:PORT address: {v:?} (host names are not resolved)")
                })?;
                if !matches!(a.ip(), IpAddr::V4(_)) || a.port() == 0 {
                    return Err(format!(
                        "--target: {v:?}: an IPv4 address and a port (the sources are IPv4)"
                    ));
                }
                target = Some(a);
            }
            "--duration" => {
                let s: f64 = num(opt, val()?)?;
                if !(s > 0.0 && s <= 86_400.0) {
                    return Err("--duration: more than 0 and at most 86400 seconds".into());
                }
                duration = Some((s * SEC as f64) as Micros);
            }
            "--rate" => {
                let r: f64 = num(opt, val()?)?;
                if !(0.0..=FLOOD_RATE_MAX).contains(&r) || !r.is_finite() {
                    return Err(format!(
                        "--rate: between 0 (unpaced) and {FLOOD_RATE_MAX} datagrams per second"
                    ));
                }
                p.rate = r;
            }
            "--sources" => (p.network, p.prefix) = parse_cidr(val()?)?,
            "--source-count" => {
                p.source_count = num(opt, val()?)?;
                if p.source_count == 0 || p.source_count > SOURCES_MAX {
                    return Err(format!("--source-count: 1 to {SOURCES_MAX}"));
                }
            }
            "--mix" => p.mix = parse_mix(val()?)?,
            "--number" => {
                let v = val()?;
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+') {
                    return Err(format!("--number: {v:?}: digits, letters or +"));
                }
                p.number = v.to_string();
            }
            "--seed" => p.seed = num(opt, val()?)?,
            "--workers" => {
                p.workers = num(opt, val()?)?;
                if p.workers == 0 || p.workers > WORKERS_MAX {
                    return Err(format!("--workers: 1 to {WORKERS_MAX}"));
                }
            }
            "--cpus" => {
                let list: Result<Vec<usize>, String> =
                    val()?.split(',').map(|c| num(opt, c.trim())).collect();
                p.cpus = Some(list?);
            }
            "--drain-ms" => {
                let ms: u64 = num(opt, val()?)?;
                if ms > 60_000 {
                    return Err("--drain-ms: at most 60000".into());
                }
                p.drain = ms * MS;
            }
            "--json" => p.json = Some(PathBuf::from(val()?)),
            "--quiet" | "-q" => p.quiet = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    p.target = target.ok_or("flood: --target IP:PORT is required")?;
    p.duration = duration.ok_or("flood: --duration S is required (a run must end)")?;
    if p.source_count as u64 > p.hosts() {
        return Err(format!(
            "--source-count: {} addresses do not fit in --sources {}/{} ({} hosts)",
            p.source_count,
            p.network,
            p.prefix,
            p.hosts()
        ));
    }
    if p.workers > p.source_count {
        return Err(format!(
            "--workers: {} workers need at least as many --source-count",
            p.workers
        ));
    }
    let target_ip = p.target.ip();
    if (0..p.source_count).any(|i| IpAddr::V4(p.source(i)) == target_ip) {
        return Err(format!(
            "--sources: the target {target_ip} is one of the source addresses"
        ));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_a_flood() {
        let p = parse(&args(
            "--target 127.0.0.1:5060 --rate 300000 --duration 30 --sources 127.1.0.0/16 \
             --source-count 1000 --mix invite=5,junk=1 --cpus 1 --workers 1 --seed 9 \
             --json /tmp/x.json --quiet --drain-ms 200",
        ))
        .unwrap();
        assert_eq!(p.target, "127.0.0.1:5060".parse().unwrap());
        assert_eq!(p.rate, 300000.0);
        assert_eq!(p.duration, 30 * SEC);
        assert_eq!(p.source_count, 1000);
        assert_eq!(p.mix, [5, 1, 0, 0]);
        assert_eq!(p.cpus, Some(vec![1]));
        assert_eq!(p.seed, 9);
        assert_eq!(p.drain, 200 * MS);
        assert!(p.quiet);
        assert_eq!(p.source(0), Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(p.source(255), Ipv4Addr::new(127, 1, 1, 0));
    }

    #[test]
    fn defaults() {
        let p = parse(&args("--target 127.0.0.1:5060 --duration 1.5")).unwrap();
        assert_eq!(p.duration, 1_500_000);
        assert_eq!(p.mix, [50, 30, 15, 5]);
        assert_eq!(
            (p.network, p.prefix, p.source_count),
            (Ipv4Addr::new(127, 1, 0, 0), 16, 256)
        );
        assert_eq!(p.rate, 10_000.0);
        assert_eq!(p.workers, 1);
    }

    #[test]
    fn cidr_and_mix() {
        assert_eq!(
            parse_cidr("10.0.0.0/8").unwrap(),
            (Ipv4Addr::new(10, 0, 0, 0), 8)
        );
        assert_eq!(parse_cidr("127.1.2.3").unwrap().1, 32);
        assert!(parse_cidr("127.1.0.1/16").is_err());
        assert!(parse_cidr("127.1.0.0/33").is_err());
        assert!(parse_cidr("::1/128").is_err());
        assert_eq!(
            parse_mix("options=5,invite=50,mutated=15,junk=30").unwrap(),
            [50, 30, 15, 5]
        );
        assert!(parse_mix("invite=0").is_err());
        assert!(parse_mix("register=1").is_err());
        assert!(parse_mix("invite").is_err());
        assert!(parse_mix("invite=x").is_err());
    }

    #[test]
    fn mistakes_name_the_option() {
        for (bad, opt) in [
            ("--duration 5", "--target"),
            ("--target 127.0.0.1:5060", "--duration"),
            ("--target localhost:5060 --duration 1", "--target"),
            ("--target [::1]:5060 --duration 1", "--target"),
            ("--target 127.0.0.1:5060 --duration 0", "--duration"),
            ("--target 127.0.0.1:5060 --duration 1 --rate -1", "--rate"),
            ("--target 127.0.0.1:5060 --duration 1 --rate fast", "--rate"),
            (
                "--target 127.0.0.1:5060 --duration 1 --source-count 0",
                "--source-count",
            ),
            (
                "--target 127.0.0.1:5060 --duration 1 --sources 127.1.0.0/30 --source-count 3",
                "--source-count",
            ),
            ("--target 127.1.0.1:5060 --duration 1", "--sources"),
            (
                "--target 127.0.0.1:5060 --duration 1 --mix junk=1,foo=2",
                "--mix",
            ),
            (
                "--target 127.0.0.1:5060 --duration 1 --workers 0",
                "--workers",
            ),
            ("--target 127.0.0.1:5060 --duration 1 --cpus a", "--cpus"),
            ("--target 127.0.0.1:5060 --duration 1 --seed", "--seed"),
            (
                "--target 127.0.0.1:5060 --duration 1 --number a;b",
                "--number",
            ),
        ] {
            let e = parse(&args(bad)).unwrap_err();
            assert!(e.contains(opt), "{bad}: {e}");
        }
        assert!(parse(&args("--bogus")).unwrap_err().contains("--bogus"));
        assert_eq!(parse(&args("--help")).unwrap_err(), "");
    }
}
