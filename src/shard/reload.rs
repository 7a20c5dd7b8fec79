//! Configuration reload (docs/routing.md "Health, limits, reload"): re-read the file the server
//! was started with, validate and compile it here, off the shards, then hand every shard the
//! new routing table through its `ReloadSlot`. A shard checks its slot once per loop turn
//! (one atomic load) and swaps the table between batches; calls in progress keep the table
//! they started with (the core's `Plan` holds it). Trunk health and admission counters
//! survive because every table gets its states from the one `Registry` of the process.
//!
//! A file that does not load changes nothing. `[server]` settings cannot change while
//! running (sockets, shards, CPUs, the metrics listener): a reload that changes them applies
//! the rest and names the keys that need a restart.
//!
//! The old table is never freed on a shard: the control plane keeps a reference to every
//! table it replaced (`retired`) and drops it here once nothing else holds it (a table of a
//! million prefixes takes milliseconds to free).

use super::WakeShards;
use crate::config::{self, Config, ConfigError};
use crate::control::metrics::ShardState;
use crate::control::MetricsHub;
use crate::routing::RoutingTable;
use crate::trunks::{Registry, TrunkState};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// How long `reload` waits for every shard to switch before it reports the ones that have
/// not. A parked shard is woken at once and a busy one switches at its next loop turn, so
/// this is only reached when a shard is stuck (it then switches whenever it moves again).
pub const RELOAD_APPLY_WAIT_MAX: Duration = Duration::from_secs(5);

/// The live trunk states of a table, indexed like `RoutingTable::trunks`.
pub type TrunkStates = Arc<[Arc<TrunkState>]>;

/// A routing table on its way to a shard.
pub(crate) struct Published {
    pub generation: u64,
    pub routing: Arc<RoutingTable>,
    pub states: TrunkStates,
}

/// One shard's mailbox for a new routing table (latest wins).
#[derive(Default)]
pub(crate) struct ReloadSlot {
    /// Generation of the newest table put in `next`.
    published: AtomicU64,
    /// Generation the shard routes with (written by the shard after the swap).
    applied: AtomicU64,
    next: Mutex<Option<Published>>,
}

impl ReloadSlot {
    /// Control plane: replace whatever waits with `table`.
    fn put(&self, table: Published) {
        let generation = table.generation;
        *lock(&self.next) = Some(table);
        self.published.store(generation, Ordering::Release);
    }

    /// Shard, once per loop turn: a newer table than `running` waits.
    #[inline]
    pub fn pending(&self, running: u64) -> bool {
        self.published.load(Ordering::Acquire) > running
    }

    /// Shard: the waiting table, without ever blocking (`None` while the control plane is
    /// storing one: the shard tries again at its next turn).
    pub fn try_take(&self) -> Option<Published> {
        match self.next.try_lock() {
            Ok(mut next) => next.take(),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().take(),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Shard: it routes with `generation` now.
    pub fn applied(&self, generation: u64) {
        self.applied.store(generation, Ordering::Release);
    }

    fn applied_generation(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What an accepted reload did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadSummary {
    /// The file read (`config::EMBEDDED_SOURCE` when there is none).
    pub source: String,
    /// False when there was nothing to reload (the embedded default is running): nothing
    /// changed.
    pub applied: bool,
    /// The generation now in use (0: the configuration the server started with).
    pub generation: u64,
    pub trunks: usize,
    pub routes: usize,
    /// `[server]` keys whose new value differs from the running one: not applied, they need
    /// a restart (the running values stay in use).
    pub restart_needed: Vec<&'static str>,
    /// Shards that had not switched to the new table within `RELOAD_APPLY_WAIT_MAX` (they
    /// switch at their next loop turn).
    pub lagging_shards: Vec<usize>,
}

impl ReloadSummary {
    /// The log lines describing it (without the `junction: ` prefix).
    pub fn lines(&self) -> Vec<String> {
        if !self.applied {
            return vec![format!(
                "reload: running the {} (no --config file): nothing to reload",
                self.source.trim_start_matches('<').trim_end_matches('>')
            )];
        }
        let mut lines = vec![format!(
            "reloaded {}: {} trunk{}, {} route{}",
            self.source,
            self.trunks,
            if self.trunks == 1 { "" } else { "s" },
            self.routes,
            if self.routes == 1 { "" } else { "s" },
        )];
        if !self.restart_needed.is_empty() {
            lines.push(format!(
                "warning: {} changed in {}: not applied, restart junction for {} (still using the running value{})",
                self.restart_needed.join(", "),
                self.source,
                if self.restart_needed.len() == 1 { "it" } else { "them" },
                if self.restart_needed.len() == 1 { "" } else { "s" },
            ));
        }
        if !self.lagging_shards.is_empty() {
            lines.push(format!(
                "warning: reload: shard{} {:?} had not switched to the new routing table after {:?}; {} will at {} next loop turn",
                if self.lagging_shards.len() == 1 { "" } else { "s" },
                self.lagging_shards,
                RELOAD_APPLY_WAIT_MAX,
                if self.lagging_shards.len() == 1 { "it" } else { "they" },
                if self.lagging_shards.len() == 1 { "its" } else { "their" },
            ));
        }
        lines
    }
}

/// The log lines for a refused reload (without the `junction: ` prefix): one per problem,
/// then a summary.
pub fn refused_lines(source: &str, errors: &[ConfigError]) -> Vec<String> {
    let mut lines: Vec<String> = errors
        .iter()
        .map(|e| format!("reload refused: {e}"))
        .collect();
    let n = errors.len();
    lines.push(format!(
        "reload refused: {source}: {n} problem{}; still running the previous configuration",
        if n == 1 { "" } else { "s" }
    ));
    lines
}

/// The `[server]` keys whose value differs between the running and the new configuration.
/// Every field is named (no `..`): a key added to `config::Server` does not compile here
/// until someone decides whether a reload can apply it.
fn server_changes(running: &config::Server, new: &config::Server) -> Vec<&'static str> {
    let config::Server {
        cores,
        cpus,
        listen,
        advertise,
        metrics,
        // Compiled into the routing table: a reload applies it.
        unknown_source: _,
        overload_feedback: _,
        retry_after_s: _,
        max_memory_mb,
        shard_ports,
    } = new;
    let mut keys = Vec::new();
    if *cores != running.cores {
        keys.push("server.cores");
    }
    if *cpus != running.cpus {
        keys.push("server.cpus");
    }
    if *listen != running.listen {
        keys.push("server.listen");
    }
    if *advertise != running.advertise {
        keys.push("server.advertise");
    }
    if *metrics != running.metrics {
        keys.push("server.metrics");
    }
    if *max_memory_mb != running.max_memory_mb {
        keys.push("server.max_memory_mb");
    }
    if *shard_ports != running.shard_ports {
        keys.push("server.shard_ports");
    }
    keys
}

/// What the control plane keeps between reloads.
struct ReloadState {
    generation: u64,
    /// The table the shards were last given (kept so no shard frees it).
    current: (Arc<RoutingTable>, TrunkStates),
    /// Replaced tables still used somewhere (a shard not yet switched, calls in progress).
    retired: Vec<(Arc<RoutingTable>, TrunkStates)>,
}

impl ReloadState {
    /// Drop the retired tables nothing else holds any more (here, off the shards).
    fn reap(&mut self) {
        self.retired
            .retain(|(routing, _)| Arc::strong_count(routing) > 1);
    }
}

/// Reloads the configuration of a running server (shared by `Server::reload`, the SIGHUP
/// handler and `POST /reload`; one reload at a time).
pub(crate) struct Reloader {
    source: String,
    /// The `[server]` settings the process runs with (never changed by a reload).
    running: config::Server,
    /// The `[cdr]` settings the CDR writer runs with (a reload cannot change them).
    running_cdr: Option<config::CdrSettings>,
    registry: Registry,
    slots: Vec<Arc<ReloadSlot>>,
    hub: Arc<MetricsHub>,
    wake: WakeShards,
    state: Mutex<ReloadState>,
}

impl Reloader {
    pub fn new(
        config: &Config,
        registry: Registry,
        routing: Arc<RoutingTable>,
        states: TrunkStates,
        slots: Vec<Arc<ReloadSlot>>,
        hub: Arc<MetricsHub>,
        wake: WakeShards,
    ) -> Reloader {
        Reloader {
            source: config.source.clone(),
            running: config.server.clone(),
            running_cdr: config.cdr.clone(),
            registry,
            slots,
            hub,
            wake,
            state: Mutex::new(ReloadState {
                generation: 0,
                current: (routing, states),
                retired: Vec::new(),
            }),
        }
    }

    /// The routing table and trunk states the shards run with now.
    pub fn current(&self) -> (Arc<RoutingTable>, TrunkStates) {
        let state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        (Arc::clone(&state.current.0), Arc::clone(&state.current.1))
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Re-read the file, and on success hand the new table to every shard and wait (at most
    /// `RELOAD_APPLY_WAIT_MAX`) until they use it. On failure nothing changes.
    pub fn reload(&self) -> Result<ReloadSummary, Vec<ConfigError>> {
        let mut state = lock(&self.state);
        state.reap();
        if self.source == config::EMBEDDED_SOURCE {
            return Ok(ReloadSummary {
                source: self.source.clone(),
                applied: false,
                generation: state.generation,
                trunks: 0,
                routes: 0,
                restart_needed: Vec::new(),
                lagging_shards: Vec::new(),
            });
        }
        let compiled = config::load(Path::new(&self.source))
            .and_then(|config| RoutingTable::compile(&config).map(|table| (config, table)));
        let (config, table) = match compiled {
            Ok(done) => done,
            Err(errors) => {
                self.hub.count_reload_failure();
                return Err(errors);
            }
        };
        let mut restart_needed = server_changes(&self.running, &config.server);
        if config.cdr != self.running_cdr {
            restart_needed.push("cdr");
        }
        // The log level applies at once.
        crate::control::log::set_level(config.log.level);
        crate::control::log::set_priority(config.log.priority);
        let routing = Arc::new(table);
        let states = self.registry.states_for(&routing);
        self.hub.set_trunk_states(Arc::clone(&states));
        state.generation += 1;
        let generation = state.generation;
        for slot in &self.slots {
            slot.put(Published {
                generation,
                routing: Arc::clone(&routing),
                states: Arc::clone(&states),
            });
        }
        self.wake.wake_all();
        let replaced = std::mem::replace(&mut state.current, (routing, states));
        state.retired.push(replaced);
        let lagging_shards = self.wait_applied(generation);
        state.reap();
        Ok(ReloadSummary {
            source: self.source.clone(),
            applied: true,
            generation,
            trunks: config.trunks.len(),
            routes: config.routes.len(),
            restart_needed,
            lagging_shards,
        })
    }

    /// Wait until every running shard routes with `generation`; the shards that do not.
    fn wait_applied(&self, generation: u64) -> Vec<usize> {
        let deadline = Instant::now() + RELOAD_APPLY_WAIT_MAX;
        loop {
            let lagging: Vec<usize> = self
                .slots
                .iter()
                .enumerate()
                .filter(|(index, slot)| {
                    slot.applied_generation() < generation
                        && self
                            .hub
                            .slot(*index)
                            .is_some_and(|s| s.state() != ShardState::Stopped)
                })
                .map(|(index, _)| index)
                .collect();
            if lagging.is_empty() || Instant::now() >= deadline {
                return lagging;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Free the replaced tables nothing uses any more. Never waits for a reload in progress.
    pub fn reap(&self) {
        let state = match self.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let mut state = state;
        state.reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(listen: &str) -> config::Server {
        let listen = listen.parse().unwrap();
        config::Server {
            cores: 2,
            cpus: None,
            listen,
            advertise: listen,
            metrics: None,
            unknown_source: crate::routing::UnknownSource::Reject,
            max_memory_mb: crate::limits::MEMORY_MB_DEFAULT,
            overload_feedback: true,
            retry_after_s: crate::limits::RETRY_AFTER_SECS,
            shard_ports: None,
        }
    }

    #[test]
    fn server_changes_name_every_changed_key() {
        let running = server("127.0.0.1:5060");
        assert!(server_changes(&running, &running.clone()).is_empty());
        let mut new = server("127.0.0.1:5070");
        new.cores = 3;
        new.cpus = Some(vec![0, 1, 0]);
        new.metrics = Some("127.0.0.1:9090".parse().unwrap());
        assert_eq!(
            server_changes(&running, &new),
            [
                "server.cores",
                "server.cpus",
                "server.listen",
                "server.advertise",
                "server.metrics"
            ]
        );
    }

    #[test]
    fn a_slot_hands_over_the_latest_table_once() {
        let slot = ReloadSlot::default();
        assert!(!slot.pending(0));
        let config = config::parse("[server]\nlisten = \"127.0.0.1:5060\"\n", "t").unwrap();
        let routing = Arc::new(RoutingTable::compile(&config).unwrap());
        let states = Registry::new(Instant::now()).states_for(&routing);
        for generation in [1, 2] {
            slot.put(Published {
                generation,
                routing: Arc::clone(&routing),
                states: Arc::clone(&states),
            });
        }
        assert!(slot.pending(0));
        assert!(slot.pending(1));
        let taken = slot.try_take().unwrap();
        assert_eq!(taken.generation, 2, "latest wins");
        assert!(slot.try_take().is_none(), "taken once");
        assert!(!slot.pending(2));
        slot.applied(2);
        assert_eq!(slot.applied_generation(), 2);
    }

    const TRUNKS: &str = r#"
[server]
listen = "127.0.0.1:5060"

[[trunk]]
name = "gw-a"
send_to = "127.0.0.3:5060"

[[route]]
name = "all"
prefixes = [""]
trunks = ["gw-a"]
"#;

    /// A reloader of `path` for a server without shards.
    fn reloader(path: &Path) -> Reloader {
        let config = config::load(path).unwrap();
        let routing = Arc::new(RoutingTable::compile(&config).unwrap());
        let registry = Registry::new(Instant::now());
        let states = registry.states_for(&routing);
        let control = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        Reloader::new(
            &config,
            registry,
            routing,
            states,
            Vec::new(),
            Arc::new(MetricsHub::new(&[], 0)),
            WakeShards {
                control,
                addrs: Vec::new(),
            },
        )
    }

    fn current(reloader: &Reloader) -> (Arc<RoutingTable>, TrunkStates) {
        let state = lock(&reloader.state);
        (Arc::clone(&state.current.0), Arc::clone(&state.current.1))
    }

    #[test]
    fn trunk_state_survives_reloads_and_old_tables_are_freed_here() {
        let dir = std::env::temp_dir().join(format!("junction-reload-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.toml");
        std::fs::write(&path, TRUNKS).unwrap();
        let reloader = reloader(&path);
        let (first, first_states) = current(&reloader);
        first_states[0].set_up(false); // health learnt before the reload

        // A new trunk before gw-a: gw-a moves to index 1 and keeps its state.
        let more = TRUNKS.replace(
            "[[trunk]]\nname = \"gw-a\"",
            "[[trunk]]\nname = \"gw-0\"\nsend_to = \"127.0.0.4:5060\"\n\n[[trunk]]\nname = \"gw-a\"",
        );
        std::fs::write(&path, more).unwrap();
        let summary = reloader.reload().unwrap();
        assert_eq!((summary.generation, summary.trunks), (1, 2));
        let (second, states) = current(&reloader);
        assert_eq!(second.trunks[1].name, "gw-a");
        assert!(
            Arc::ptr_eq(&states[1], &first_states[0]),
            "same state object"
        );
        assert!(!states[1].is_up());
        assert!(states[0].is_up(), "a new trunk starts up");

        // `first` is still held here (like a call in progress): retired, not freed.
        drop(first_states);
        assert_eq!(lock(&reloader.state).retired.len(), 1);
        let weak = Arc::downgrade(&first);
        drop(first);
        assert!(weak.upgrade().is_some(), "the control plane still holds it");
        reloader.reap();
        assert!(weak.upgrade().is_none(), "freed by reap, on this thread");
        assert!(lock(&reloader.state).retired.is_empty());

        // A broken file changes nothing and is counted.
        std::fs::write(&path, "[server\n").unwrap();
        let errors = reloader.reload().unwrap_err();
        assert_eq!(errors[0].line, Some(1), "{errors:?}");
        assert!(Arc::ptr_eq(&current(&reloader).0, &second));
        assert_eq!(reloader.hub.control_counters().reload_failures, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn log_lines() {
        let mut summary = ReloadSummary {
            source: "/etc/junction.toml".into(),
            applied: true,
            generation: 1,
            trunks: 3,
            routes: 1,
            restart_needed: vec!["server.listen"],
            lagging_shards: Vec::new(),
        };
        assert_eq!(
            summary.lines(),
            [
                "reloaded /etc/junction.toml: 3 trunks, 1 route",
                "warning: server.listen changed in /etc/junction.toml: not applied, restart junction for it (still using the running value)"
            ]
        );
        summary.applied = false;
        summary.source = config::EMBEDDED_SOURCE.into();
        assert_eq!(
            summary.lines(),
            ["reload: running the embedded default (no --config file): nothing to reload"]
        );
        let error = ConfigError {
            file: "f.toml".into(),
            line: Some(7),
            key: "route[0].trunks[0]".into(),
            message: "there is no trunk named \"x\"".into(),
        };
        assert_eq!(
            refused_lines("f.toml", &[error]),
            [
                "reload refused: f.toml:7: route[0].trunks[0]: there is no trunk named \"x\"",
                "reload refused: f.toml: 1 problem; still running the previous configuration"
            ]
        );
    }
}
