//! What the server logs about itself: the startup summary and the outcome of every reload
//! (through `control::log`, one structured line each).

use super::reload::{self, ReloadSummary, RELOAD_APPLY_WAIT_MAX};
use super::Server;
use crate::config::{Config, ConfigError};

/// The startup summary, taken from the configuration before it moves into the server.
pub(super) struct Startup {
    source: String,
    trunks: usize,
    routes: usize,
    cdr: String,
    log_level: &'static str,
    /// `server.shard_ports` as "first-last", or "off".
    shard_ports: String,
}

impl Startup {
    pub fn of(config: &Config) -> Startup {
        Startup {
            source: config.source.clone(),
            shard_ports: config.server.shard_ports.map_or_else(
                || "off".to_string(),
                |base| {
                    let last = usize::from(base) + config.server.cores.saturating_sub(1);
                    format!("{base}-{last}")
                },
            ),
            trunks: config.trunks.len(),
            routes: config.routes.len(),
            cdr: config
                .cdr
                .as_ref()
                .map_or_else(|| "off".to_string(), |c| c.path.display().to_string()),
            log_level: config.log.level.as_str(),
        }
    }

    /// One line: version, configuration, shards and their CPUs, sockets, trunks, routes.
    pub fn log(&self, server: &Server) {
        let metrics = server
            .metrics_addr()
            .map_or_else(|| "off".to_string(), |a| format!("http://{a}/metrics"));
        let cpus = server
            .cpus()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let cdr_cpu = server
            .cdr
            .as_ref()
            .and_then(|w| w.cpu())
            .map_or_else(|| "-".to_string(), |c| c.to_string());
        crate::log_info!(
            "junction started",
            version = env!("CARGO_PKG_VERSION"),
            config = self.source,
            shards = server.shards(),
            cpus = cpus,
            listen = format!("udp:{}", server.local_addr()),
            sockets = server.shards(),
            shard_ports = self.shard_ports,
            metrics = metrics,
            trunks = self.trunks,
            routes = self.routes,
            cdr = self.cdr,
            cdr_cpu = cdr_cpu,
            kernel_filter = server.kernel_filter(),
            log_level = self.log_level
        );
    }
}

/// Log a reload's outcome; returns (accepted, the report for `POST /reload`).
pub(super) fn reload(
    result: Result<ReloadSummary, Vec<ConfigError>>,
    source: &str,
) -> (bool, Vec<String>) {
    match result {
        Ok(summary) => {
            log_summary(&summary);
            (true, summary.lines())
        }
        Err(errors) => {
            for e in &errors {
                crate::log_warn!("reload refused", problem = e);
            }
            crate::log_warn!(
                "reload refused: still running the previous configuration",
                source = source,
                problems = errors.len()
            );
            (false, reload::refused_lines(source, &errors))
        }
    }
}

fn log_summary(s: &ReloadSummary) {
    if !s.applied {
        crate::log_info!(
            "nothing to reload: running the embedded default (no --config file)",
            source = s.source
        );
        return;
    }
    crate::log_info!(
        "config reloaded",
        source = s.source,
        generation = s.generation,
        trunks = s.trunks,
        routes = s.routes
    );
    if !s.restart_needed.is_empty() {
        crate::log_warn!(
            "config changed where a reload cannot apply it: restart junction for it (the running values stay)",
            source = s.source,
            keys = s.restart_needed.join(",")
        );
    }
    if !s.lagging_shards.is_empty() {
        let shards = s
            .lagging_shards
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        crate::log_warn!(
            "shards had not switched to the new routing table; they will at their next loop turn",
            shards = shards,
            waited = format!("{RELOAD_APPLY_WAIT_MAX:?}")
        );
    }
}

/// The `STATUS=` line for systemd after a reload: the report's first line when applied, its
/// summary (the last line) when refused.
pub(super) fn reload_status(accepted: bool, lines: &[String]) -> String {
    let line = if accepted {
        lines.first()
    } else {
        lines.last()
    };
    line.cloned().unwrap_or_default()
}
