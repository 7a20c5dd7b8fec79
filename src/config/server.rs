//! The `[server]` section: shards, CPUs, the listening and advertised addresses, metrics.

use std::net::SocketAddr;

use super::addr;
use super::toml_doc::{Doc, Section};
use super::Server;
use crate::routing::UnknownSource;

/// Most shards a configuration may ask for (a sanity bound: a typo like `cores = 200000`
/// should be an error, not 200,000 threads).
pub const CORES_MAX: usize = 1024;

pub const SIP_PORT: u16 = 5060;
pub const METRICS_PORT: u16 = 9090;

const KEYS: &[&str] = &[
    "cores",
    "cpus",
    "listen",
    "advertise",
    "metrics",
    "unknown_source",
    "max_memory_mb",
    "overload_feedback",
    "retry_after_s",
    "shard_ports",
];
const LATER: &[&str] = &["reload"];

/// Online CPUs (respecting affinity masks and cgroup limits); 1 if unknown.
pub fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Read `[server]`. Returns `None` (with errors recorded) when it cannot be used.
pub fn read(doc: &mut Doc<'_>, root: &Section<'_>) -> Option<Server> {
    let Some(server) = root.table(doc, "server") else {
        if root.field(doc, "server").is_none() {
            doc.error(
                None,
                "server",
                "missing: add a [server] section with at least listen = \"udp:ip:port\"",
            );
        }
        return None;
    };
    server.check_keys(doc, KEYS, LATER);
    let ok_before = doc.errors.len();

    let cores = read_cores(doc, &server);
    let cpus = read_cpus(doc, &server, cores);
    let listen = read_listen(doc, &server);
    let advertise = read_advertise(doc, &server, listen);
    let metrics = server.field(doc, "metrics").and_then(|f| {
        let text = f.string(doc, "an address in quotes, like \"127.0.0.1:9090\"")?;
        match addr::socket_addr(text, METRICS_PORT) {
            Ok(a) => Some(a),
            Err(m) => {
                doc.error(f.line, &f.key, m);
                None
            }
        }
    });

    let unknown_source = read_unknown_source(doc, &server);
    let mut max_memory_mb = crate::limits::MEMORY_MB_DEFAULT;
    if let Some(f) = server.field(doc, "max_memory_mb") {
        let (min, max) = (crate::limits::MEMORY_MB_MIN, crate::limits::MEMORY_MB_MAX);
        let expected = format!("a whole number of MiB from {min} to {max}");
        if let Some(n) = f.integer_in(doc, min as i64, max as i64, &expected) {
            max_memory_mb = n as u64;
        }
    }

    let overload_feedback = server
        .field(doc, "overload_feedback")
        .map_or(Some(true), |f| f.boolean(doc))
        .unwrap_or(true);

    let mut retry_after_s = crate::limits::RETRY_AFTER_SECS;
    if let Some(f) = server.field(doc, "retry_after_s") {
        let max = crate::limits::RETRY_AFTER_SECS_MAX;
        let expected = format!("a whole number of seconds from 0 (no Retry-After) to {max}");
        if let Some(n) = f.integer_in(doc, 0, i64::from(max), &expected) {
            retry_after_s = n as u32;
        }
    }

    let shard_ports = read_shard_ports(doc, &server, cores, listen, advertise);

    if doc.errors.len() != ok_before {
        return None;
    }
    Some(Server {
        cores: cores?,
        cpus,
        listen: listen?,
        advertise: advertise?,
        metrics,
        unknown_source,
        max_memory_mb,
        overload_feedback,
        retry_after_s,
        shard_ports,
    })
}

/// `shard_ports = BASE`: shard i also listens on port BASE + i of the listen address and
/// puts that port in its Via and Record-Route, so that responses and in-dialog requests come
/// back to the shard that owns the call (docs/scaling.md). Off when absent.
fn read_shard_ports(
    doc: &mut Doc<'_>,
    server: &Section<'_>,
    cores: Option<usize>,
    listen: Option<SocketAddr>,
    advertise: Option<SocketAddr>,
) -> Option<u16> {
    let f = server.field(doc, "shard_ports")?;
    let expected =
        "the first of the per-shard ports, a port number from 1024 to 65535 (shard i uses \
                    this port + i), or leave the key out for none";
    let base = f.integer_in(doc, 1024, 65535, expected)? as u16;
    let cores = cores?;
    let last = u32::from(base) + cores as u32 - 1;
    if last > 65535 {
        doc.error(
            f.line,
            &f.key,
            format!(
                "{cores} shards need ports {base}-{last}, beyond 65535; choose a lower first port"
            ),
        );
        return None;
    }
    let range = u32::from(base)..=last;
    for (what, a) in [("listen", listen), ("advertise", advertise)] {
        if let Some(a) = a {
            if range.contains(&u32::from(a.port())) {
                doc.error(
                    f.line,
                    &f.key,
                    format!(
                        "the per-shard ports {base}-{last} include the {what} port {}; \
                         they must be ports of their own",
                        a.port()
                    ),
                );
                return None;
            }
        }
    }
    Some(base)
}

fn read_unknown_source(doc: &mut Doc<'_>, server: &Section<'_>) -> UnknownSource {
    let Some(f) = server.field(doc, "unknown_source") else {
        return UnknownSource::Drop;
    };
    const EXPECTED: &str = "\"reject\" (answer 403 Forbidden) or \"drop\" (no answer)";
    match f.string(doc, EXPECTED) {
        Some("reject") => UnknownSource::Reject,
        Some("drop") => UnknownSource::Drop,
        Some(other) => {
            doc.error(f.line, &f.key, format!("{other:?}: must be {EXPECTED}"));
            UnknownSource::Drop
        }
        None => UnknownSource::Drop,
    }
}

fn read_cores(doc: &mut Doc<'_>, server: &Section<'_>) -> Option<usize> {
    let Some(f) = server.field(doc, "cores") else {
        return Some(online_cpus());
    };
    const EXPECTED: &str = "a whole number of shards like 2, or \"auto\" (one per online CPU)";
    if let Some(s) = f.item.as_str() {
        if s == "auto" {
            return Some(online_cpus());
        }
        doc.error(
            f.line,
            &f.key,
            format!("must be {EXPECTED}; found the text {s:?}"),
        );
        return None;
    }
    let n = f.integer(doc, EXPECTED)?;
    if n < 1 {
        doc.error(
            f.line,
            &f.key,
            format!("{n} shards cannot carry calls: must be at least 1, or \"auto\""),
        );
        return None;
    }
    match usize::try_from(n) {
        Ok(n) if n <= CORES_MAX => Some(n),
        _ => {
            doc.error(f.line, &f.key, format!("{n} shards; at most {CORES_MAX}"));
            None
        }
    }
}

fn read_cpus(doc: &mut Doc<'_>, server: &Section<'_>, cores: Option<usize>) -> Option<Vec<usize>> {
    let f = server.field(doc, "cpus")?;
    let list = f.array(doc, "a list of CPU numbers, one per shard, like [0, 1]")?;
    let mut cpus = Vec::with_capacity(list.len());
    for e in &list {
        match e.value.as_integer().map(usize::try_from) {
            Some(Ok(cpu)) if cpus.contains(&cpu) => doc.error(
                e.line,
                &e.key,
                format!("CPU {cpu} is listed twice; each shard needs a CPU of its own"),
            ),
            Some(Ok(cpu)) => cpus.push(cpu),
            _ => doc.error(
                e.line,
                &e.key,
                "must be a CPU number (0, 1, ...) as listed by lscpu",
            ),
        }
    }
    if let Some(cores) = cores {
        if list.len() != cores {
            let how = match server.field(doc, "cores") {
                Some(c) if c.item.as_str() == Some("auto") => {
                    format!("cores = \"auto\" is {cores} on this machine")
                }
                Some(_) => format!("cores = {cores}"),
                None => format!("cores is not set, so it is {cores} (the online CPUs)"),
            };
            doc.error(
                f.line,
                &f.key,
                format!(
                    "lists {} CPUs but {how}; give exactly one CPU per shard",
                    list.len()
                ),
            );
        }
    }
    Some(cpus)
}

fn read_listen(doc: &mut Doc<'_>, server: &Section<'_>) -> Option<SocketAddr> {
    let Some(f) = server.field(doc, "listen") else {
        doc.error(
            server.line,
            &format!("{}.listen", server.path),
            "missing: where junction receives SIP, like listen = \"udp:192.0.2.10:5060\"",
        );
        return None;
    };
    const EXPECTED: &str = "an address in quotes like \"udp:192.0.2.10:5060\"";
    // One address, or a list holding exactly one (later versions accept several).
    let (text, line, key) = if f.item.is_array() {
        let list = f.strings(doc, EXPECTED)?;
        let mut list = list.into_iter();
        match (list.next(), list.next()) {
            (Some(one), None) => (one.str(), one.line, one.key),
            (None, _) => {
                doc.error(f.line, &f.key, "the list is empty; give one address");
                return None;
            }
            (Some(_), Some(second)) => {
                doc.error(
                    second.line,
                    &second.key,
                    "this version of junction listens on one address only",
                );
                return None;
            }
        }
    } else {
        (f.string(doc, EXPECTED)?, f.line, f.key.clone())
    };
    let parsed = addr::split_transport(text).and_then(|rest| addr::socket_addr(rest, SIP_PORT));
    match parsed {
        Ok(a) => Some(a),
        Err(m) => {
            doc.error(line, &key, m);
            None
        }
    }
}

fn read_advertise(
    doc: &mut Doc<'_>,
    server: &Section<'_>,
    listen: Option<SocketAddr>,
) -> Option<SocketAddr> {
    let Some(f) = server.field(doc, "advertise") else {
        let listen = listen?;
        if listen.ip().is_unspecified() {
            let line = server.field(doc, "listen").and_then(|l| l.line);
            doc.error(
                line,
                &format!("{}.advertise", server.path),
                format!(
                    "required because listen is {} (every local address): set the address \
                     peers reach junction at, like advertise = \"192.0.2.10:{}\"; it goes in \
                     our Via and Record-Route",
                    listen.ip(),
                    listen.port()
                ),
            );
            return None;
        }
        return Some(listen);
    };
    let text = f.string(doc, "an address in quotes like \"192.0.2.10:5060\"")?;
    // Without a port, peers reach us on the port we listen on.
    let port = listen.map_or(SIP_PORT, |l| l.port());
    match addr::destination(text, port) {
        Ok(a) => Some(a),
        Err(m) => {
            doc.error(f.line, &f.key, m);
            None
        }
    }
}
