//! `junction check FILE`: every problem as `file:line: key: message` (exit 1), or the
//! warnings (`warning: file:line: key: message`: unreachable routes, hairpin risk, shards
//! sharing a CPU) and a summary (exit 0). `cores` and `cpus` are checked against the CPUs
//! this process may run on (`host.rs`) unless `--no-host`; `--host` adds `junction doctor`.

use std::path::Path;
use std::process::ExitCode;

use junction::config::{self, Config};
use junction::routing::RoutingTable;

use super::args::CheckArgs;
use super::{count, host, load};

pub fn run(args: &CheckArgs) -> ExitCode {
    let file = args.file.as_str();
    let loaded = load(Some(file)).and_then(|(config, table)| {
        let mut warnings = config::warnings(&config);
        if !args.no_host {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let (errors, host_warnings) = host::cpu_findings(&config, &text, &host::allowed_cpus());
            if !errors.is_empty() {
                return Err(errors);
            }
            warnings.extend(host_warnings);
        }
        Ok((config, table, warnings))
    });
    match loaded {
        Ok((config, table, warnings)) => {
            for w in &warnings {
                println!("warning: {w}");
            }
            println!("{}", summary(&config, &table, warnings.len()));
            if !args.host {
                return ExitCode::SUCCESS;
            }
            let (report, worst) = host::check_host(&config, Path::new(file));
            print!("\n{report}");
            match worst {
                host::Level::Fail => ExitCode::from(1),
                _ => ExitCode::SUCCESS,
            }
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            let n = errors.len();
            eprintln!("{file}: {n} problem{} found", if n == 1 { "" } else { "s" });
            ExitCode::from(1)
        }
    }
}

fn summary(config: &Config, table: &RoutingTable, warnings: usize) -> String {
    let s = &config.server;
    let egress = config.trunks.iter().filter(|t| t.send_to.is_some()).count();
    let patterns = config.routes.iter().filter(|r| r.pattern.is_some()).count();
    let files = config
        .routes
        .iter()
        .filter(|r| r.prefix_file.is_some())
        .count();
    let metrics = s
        .metrics
        .map_or_else(|| "off".to_string(), |m| m.to_string());
    let mut usages: Vec<&str> = config
        .trunks
        .iter()
        .flat_map(|t| t.usages.iter().flatten())
        .chain(config.routes.iter().flat_map(|r| &r.usages))
        .map(String::as_str)
        .collect();
    usages.sort_unstable();
    usages.dedup();
    let ok = if warnings == 0 {
        "ok".to_string()
    } else {
        format!("ok, {}", count(warnings, "warning"))
    };
    format!(
        "{}: {ok}\n  server: {}, listen udp:{}, advertise {}, metrics {}\n  \
         trunks: {} ({} with send_to, {})\n  \
         routes: {} ({} by pattern, {} by prefix, {} by prefix file; {}, {} KiB)\n  \
         usages: {}",
        config.source,
        count(s.cores, "shard"),
        s.listen,
        s.advertise,
        metrics,
        config.trunks.len(),
        egress,
        count(table.peers_len(), "peer entry"),
        config.routes.len(),
        patterns,
        config.routes.len() - patterns - files,
        files,
        count(table.prefixes_len(), "prefix"),
        table.prefix_heap_bytes().div_ceil(1024),
        if usages.is_empty() {
            "none (every trunk may use every route)".to_string()
        } else {
            usages.join(", ")
        },
    ) + &observability(config)
}

/// The `[cdr]` and `[log]` line of the summary.
fn observability(config: &Config) -> String {
    let cdr = match &config.cdr {
        None => "off".to_string(),
        Some(c) => {
            let mut rotate = Vec::new();
            if let Some(bytes) = c.rotate_bytes {
                rotate.push(format!("at {bytes} bytes"));
            }
            if let Some(secs) = c.rotate_secs {
                rotate.push(format!("every {secs} s"));
            }
            if rotate.is_empty() {
                rotate.push("never".to_string());
            }
            format!("{}, rotated {}", c.path.display(), rotate.join(" or "))
        }
    };
    format!("\n  cdr: {cdr}; log level {}", config.log.level.as_str())
}
