//! The glommio shell: one pinned executor per shard, each with its own SO_REUSEPORT UDP
//! socket on the listen address and its own `Core`; datagrams are handed to the shard that
//! owns their Call-ID; the control plane (metrics HTTP) runs on a std thread off the shard
//! CPUs.
//!
//! `run` is the process entry point (blocks until SIGINT/SIGTERM, reloads the configuration
//! on SIGHUP). `start` does everything `run` does except waiting for a signal and returns a
//! `Server` handle, so tests can run a real server in-process, reload it with
//! `Server::reload` and stop it with `Server::shutdown`.

pub mod batch;
pub mod errqueue;
mod filter;
pub use filter::socket_drops;
pub mod handoff;
pub mod host_limits;
mod logging;
pub mod owner;
pub mod reload;
mod residence;
mod run;
pub mod socket;

pub use owner::{call_id_hash, owner};
pub use reload::ReloadSummary;

use crate::config::{Config, ConfigError};
use crate::control::cdr::{self, CdrWriter};
use crate::control::clock::WallClock;
use crate::control::http::{self, Handlers, HttpLimits, HttpServer, ReloadHook};
use crate::control::memory::MemoryGuard;
use crate::control::metrics::ShardState;
use crate::control::notify::{Notifier, Tick, Watchdog};
use crate::control::MetricsHub;
use crate::limits;
use crate::routing::RoutingTable;
use crate::sip::proxy::CoreConfig;
use crate::sip::Span;
use glommio::channels::shared_channel;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use reload::{ReloadSlot, Reloader};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How long the control loop of `run` waits for a signal before its periodic work (retired
/// tables, stopped shards, the watchdog).
const CONTROL_TURN: Duration = Duration::from_millis(250);

/// Finds the Call-ID of a datagram (a span into it), or `None`.
pub type CallIdFinder = fn(&[u8]) -> Option<Span>;

/// How `start_with` differs from `start`. `Options::default()` is production.
#[derive(Clone, Debug)]
pub struct Options {
    /// How a shard finds the Call-ID that picks the owning shard. Production uses the
    /// scanner's `sip::scan::peek_call_id`; tests may substitute their own.
    pub call_id: CallIdFinder,
    /// Use this routing table instead of compiling the configuration's (at start only: a
    /// reload compiles the file's).
    pub routing: Option<Arc<RoutingTable>>,
    /// Bounds of the metrics HTTP endpoint.
    pub http: HttpLimits,
    /// The wall-clock time the shards' cores count from (`None`: the system clock when
    /// they start). Tests set a fixed day and hour (time-of-day routing).
    pub wall: Option<crate::sip::oc::WallAnchor>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            call_id: crate::sip::scan::peek_call_id,
            routing: None,
            http: HttpLimits::default(),
            wall: None,
        }
    }
}

/// Wakes parked shards: one byte to each shard's wake socket, from the one socket the wake
/// sockets accept datagrams from.
pub(crate) struct WakeShards {
    control: std::net::UdpSocket,
    addrs: Vec<SocketAddr>,
}

impl WakeShards {
    /// Best effort: a shard that misses a byte still sees the reason (stop flag, reload
    /// slot) within `limits::SHARD_PARK_MAX`.
    pub fn wake_all(&self) {
        for addr in &self.addrs {
            let _ = self.control.send_to(&[1], addr);
        }
    }

    fn try_clone(&self) -> Result<WakeShards, String> {
        Ok(WakeShards {
            control: self
                .control
                .try_clone()
                .map_err(|e| format!("cannot share the shard wake-up socket: {e}"))?,
            addrs: self.addrs.clone(),
        })
    }
}

/// A running junction: every shard serving and the metrics endpoint (if configured) up.
pub struct Server {
    local: SocketAddr,
    cpus: Vec<usize>,
    stop: Arc<AtomicBool>,
    wake: WakeShards,
    shards: Vec<Option<ExecutorJoinHandle<Result<(), String>>>>,
    hub: Arc<MetricsHub>,
    http: Option<HttpServer>,
    warnings: Vec<String>,
    /// `None` only while starting.
    reloader: Option<Arc<Reloader>>,
    /// The CDR writer (`None`: CDRs are off).
    cdr: Option<CdrWriter>,
    /// The memory cap's watchdog thread (stops with `stop`).
    memory_watchdog: Option<std::thread::JoinHandle<()>>,
    /// The kernel pre-filter's state, for the startup line.
    kernel_filter: String,
}

/// Start with the production options.
pub fn start(config: Config) -> Result<Server, String> {
    start_with(config, Options::default())
}

/// Start every shard and the control plane; returns once every shard serves. An error that
/// comes from a process limit (locked memory, open files) names the limit and its fix.
pub fn start_with(config: Config, options: Options) -> Result<Server, String> {
    let shards = config.server.cores;
    if shards == 0 || shards > usize::from(u16::MAX) {
        return Err(format!(
            "server.cores is {shards}: it must be between 1 and {}",
            u16::MAX
        ));
    }
    host_limits::ensure(shards)?;
    start_checked(config, options).map_err(|e| host_limits::explain(e, shards))
}

fn start_checked(config: Config, options: Options) -> Result<Server, String> {
    let server = &config.server;
    let shards = server.cores;
    let cpus = shard_cpus(shards, server.cpus.as_deref())?;
    let routing = match options.routing {
        Some(routing) => routing,
        None => Arc::new(RoutingTable::compile(&config).map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })?),
    };

    // Trunk health and admission counters, shared by every shard and kept across reloads:
    // the one registry of the process (the reloader owns it).
    let registry = crate::trunks::Registry::new(std::time::Instant::now());
    let states = registry.states_for(&routing);
    crate::control::log::set_level(config.log.level);
    crate::control::log::set_priority(config.log.priority);
    crate::control::log::install_log_bridge();
    let reload_slots: Vec<Arc<ReloadSlot>> = (0..shards)
        .map(|_| Arc::new(ReloadSlot::default()))
        .collect();

    // Everything that can be refused is checked before any shard starts.
    socket::probe_free(server.listen)?;
    let listener = server.metrics.map(http::bind).transpose()?;
    let mut bound = socket::bind_shard_sockets(server.listen, shards)?;
    // Each shard's own port (`shard_ports`), bound on the same address as the shared one.
    let shard_port_sockets = match server.shard_ports {
        Some(base) => {
            socket::bind_shard_port_sockets(bound.local.ip(), base, shards, &mut bound.warnings)?
        }
        None => Vec::new(),
    };
    // The kernel pre-filter (unknown sources dropped before they are queued), before any
    // datagram is read; reloads re-apply it in each shard.
    let mut kernel_filter = String::from("off");
    for socket in bound.sockets.iter().chain(&shard_port_sockets) {
        match filter::apply(socket.as_raw_fd(), bound.local.is_ipv4(), &routing) {
            Ok(filter::Applied::Attached(n)) => kernel_filter = format!("{n}-instructions"),
            Ok(filter::Applied::None(why)) => kernel_filter = format!("off: {why}"),
            Err(e) => {
                kernel_filter = "off".into();
                bound.warnings.push(format!(
                    "kernel filter not attached ({e}): unknown sources are dropped by the shards"
                ));
            }
        }
    }
    let socket::WakeSockets {
        control: wake_control,
        shards: wake_sockets,
    } = socket::wake_sockets(shards)?;
    let local = bound.local;
    let mut advertise = server.advertise;
    if advertise.port() == 0 {
        // Listening on port 0 (tests): peers reach us on the port the kernel chose.
        advertise.set_port(local.port());
    }

    let hub = Arc::new(MetricsHub::new(
        &cpus,
        limits::HANDOFF_QUEUE_BATCHES_MAX * limits::BATCH_DATAGRAMS_MAX,
    ));
    hub.set_trunk_states(Arc::clone(&states));
    // The CDR file is opened before any shard starts (a path that cannot be written fails
    // the start). Times in records are converted with one reference pair taken now.
    let (cdr_sink, cdr_writer) = match &config.cdr {
        Some(settings) => {
            let (sink, writer) = cdr::spawn(settings, WallClock::now(), &cpus)?;
            hub.set_cdr(writer.counters());
            (Some(sink), Some(writer))
        }
        None => (None, None),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let memory = Arc::new(MemoryGuard::new(server.max_memory_mb));
    hub.set_memory(Arc::clone(&memory));
    hub.set_socket_fds(
        bound
            .sockets
            .iter()
            .chain(&shard_port_sockets)
            .map(|s| s.as_raw_fd())
            .collect(),
    );
    let handoff_counters = Arc::new(handoff::HandoffCounters::new(shards));
    let (started_tx, started_rx) = mpsc::channel();

    // One bounded channel per ordered pair of shards.
    let mut senders: Vec<Vec<_>> = (0..shards).map(|_| Vec::new()).collect();
    let mut receivers: Vec<Vec<_>> = (0..shards).map(|_| Vec::new()).collect();
    for (from, outgoing) in senders.iter_mut().enumerate() {
        for (to, incoming) in receivers.iter_mut().enumerate() {
            if from != to {
                let (tx, rx) = shared_channel::new_bounded(limits::HANDOFF_QUEUE_BATCHES_MAX);
                outgoing.push((to, tx));
                incoming.push((from, rx));
            }
        }
    }

    let mut server = Server {
        local,
        cpus: cpus.clone(),
        stop: Arc::clone(&stop),
        wake: WakeShards {
            control: wake_control,
            addrs: Vec::with_capacity(shards),
        },
        shards: Vec::with_capacity(shards),
        hub: Arc::clone(&hub),
        http: None,
        warnings: bound.warnings,
        reloader: None,
        cdr: cdr_writer,
        memory_watchdog: None,
        kernel_filter,
    };
    let mut shard_port_sockets = shard_port_sockets.into_iter();
    let shard_sockets = bound.sockets.into_iter().zip(wake_sockets);
    let channel_ends = senders.into_iter().zip(receivers);
    let mut setups = Vec::with_capacity(shards);
    // One anchor for every shard: their oc-seq values (RFC 7339) are comparable.
    let wall = options.wall.unwrap_or_else(crate::sip::oc::WallAnchor::now);
    for (index, ((socket, wake), (senders, receivers))) in
        shard_sockets.zip(channel_ends).enumerate()
    {
        let wake_addr = wake
            .local_addr()
            .map_err(|e| format!("shard {index}: cannot read its wake-up address: {e}"))?;
        server.wake.addrs.push(wake_addr);
        let Some(slot) = hub.slot(index) else {
            return Err(format!("shard {index}: no metrics slot"));
        };
        setups.push(run::ShardSetup {
            index,
            shards,
            socket,
            shard_port: shard_port_sockets.next(),
            ipv6: local.is_ipv6(),
            wake,
            senders,
            receivers,
            handoff_counters: Arc::clone(&handoff_counters),
            core_config: CoreConfig {
                shard: index as u16,
                shards: shards as u16,
                advertise,
                shard_ports: config.server.shard_ports,
                wall,
            },
            routing: Arc::clone(&routing),
            states: Arc::clone(&states),
            reload: Arc::clone(&reload_slots[index]),
            slot,
            cdr: cdr_sink.clone(),
            call_id: options.call_id,
            stop: Arc::clone(&stop),
            memory: Arc::clone(&memory),
            started: started_tx.clone(),
        });
    }
    let mut setups = setups.into_iter();
    for (index, setup) in setups.by_ref().enumerate() {
        let cpu = cpus[index];
        let spawned = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("junction-shard-{index}"))
            .io_memory(limits::IO_MEMORY_BYTES)
            .spawn(move || run::shard_main(setup));
        match spawned {
            Ok(handle) => server.shards.push(Some(handle)),
            Err(e) => {
                // The shards already started wait in `connect` for the channel ends of the
                // shards not started: drop those first (that disconnects them), then stop.
                drop(setups);
                let _ = server.stop_everything();
                return Err(format!(
                    "shard {index}: cannot start an executor on CPU {cpu}: {e}"
                ));
            }
        }
    }
    drop(started_tx);
    // Only the shards hold the CDR queue's sending ends: when they stop, the writer ends.
    drop(cdr_sink);

    // Wait until every shard serves. A shard that fails drops its `started` sender without
    // sending (and its channel ends, which releases the others), so this cannot hang.
    let mut serving = vec![false; shards];
    while let Ok(index) = started_rx.recv() {
        if let Some(flag) = serving.get_mut(index) {
            *flag = true;
        }
    }
    if let Some(failed) = serving.iter().position(|s| !s) {
        let errors = server.stop_everything();
        let detail = errors
            .into_iter()
            .find(|(index, _)| *index == failed)
            .map(|(_, e)| format!(": {e}"))
            .unwrap_or_default();
        return Err(format!(
            "shard {failed} on CPU {} failed to start{detail}",
            cpus[failed]
        ));
    }

    let live_hub = Arc::clone(&hub);
    let live = move || {
        live_hub
            .views()
            .iter()
            .map(|v| v.snapshot.core.calls_active + v.snapshot.core.transactions_active)
            .sum()
    };
    match crate::control::memory::spawn(Arc::clone(&memory), Arc::clone(&stop), live) {
        Ok(handle) => server.memory_watchdog = Some(handle),
        Err(e) => {
            let _ = server.stop_everything();
            return Err(e);
        }
    }

    let wake = match server.wake.try_clone() {
        Ok(wake) => wake,
        Err(e) => {
            let _ = server.stop_everything();
            return Err(e);
        }
    };
    let reloader = Arc::new(Reloader::new(
        &config,
        registry,
        routing,
        states,
        reload_slots,
        Arc::clone(&hub),
        wake,
    ));
    server.reloader = Some(Arc::clone(&reloader));
    let trunk_reloader = Arc::clone(&reloader);

    if let Some(listener) = listener {
        let notifier = Notifier::from_env();
        let hook: ReloadHook = Arc::new(move || {
            crate::log_info!(
                "reloading",
                source = reloader.source(),
                trigger = "POST /reload"
            );
            notifier.reloading("reloading the configuration (POST /reload)");
            let (accepted, lines) = logging::reload(reloader.reload(), reloader.source());
            notifier.reloaded(&logging::reload_status(accepted, &lines));
            let body = lines.join("\n") + "\n";
            if accepted {
                Ok(body)
            } else {
                Err(body)
            }
        });
        let mut handlers = Handlers::metrics(Arc::clone(&hub));
        handlers.reload = Some(hook);
        let current = Arc::clone(&trunk_reloader);
        handlers.endpoints.push(
            crate::control::trunk_control::TrunkControl::new(Arc::new(move || current.current()))
                .endpoint(),
        );
        match http::spawn(listener, handlers, &cpus, options.http) {
            Ok(http) => server.http = Some(http),
            Err(e) => {
                let _ = server.stop_everything();
                return Err(e);
            }
        }
    }
    Ok(server)
}

/// CPU of each shard: `cpus[i]` when configured, else the i-th CPU this process may run on
/// (wrapping around when there are more shards than CPUs).
fn shard_cpus(shards: usize, configured: Option<&[usize]>) -> Result<Vec<usize>, String> {
    if let Some(cpus) = configured {
        if cpus.len() < shards {
            return Err(format!(
                "server.cpus lists {} CPUs for {shards} shards: give one CPU per shard",
                cpus.len()
            ));
        }
        return Ok(cpus.iter().take(shards).copied().collect());
    }
    let mut online: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|core| core.id)
        .collect();
    online.sort_unstable();
    if online.is_empty() {
        return Err("cannot list the CPUs this process may run on".to_string());
    }
    Ok((0..shards).map(|i| online[i % online.len()]).collect())
}

impl Server {
    /// The UDP address every shard listens on (the chosen port when configured with 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The metrics HTTP address, when enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(HttpServer::local_addr)
    }

    /// CPU of each shard.
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    pub fn shards(&self) -> usize {
        self.cpus.len()
    }

    /// The shard owning a Call-ID on this server.
    pub fn owner_of(&self, call_id: &[u8]) -> usize {
        owner(call_id, self.shards())
    }

    /// Non-fatal problems found while starting (e.g. socket buffers capped by sysctl).
    /// "N-instructions", or "off: why".
    pub fn kernel_filter(&self) -> &str {
        &self.kernel_filter
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The current metrics exposition (what `GET /metrics` returns).
    pub fn metrics_text(&self) -> String {
        self.hub.render()
    }

    /// Reload the configuration file the server was started with (what SIGHUP and
    /// `POST /reload` do, without printing): on success every shard routes with the new
    /// table when this returns (see `ReloadSummary::lagging_shards`); on failure nothing
    /// changed and every problem is returned.
    pub fn reload(&self) -> Result<ReloadSummary, Vec<ConfigError>> {
        match &self.reloader {
            Some(reloader) => reloader.reload(),
            None => Err(vec![ConfigError {
                file: String::new(),
                line: None,
                key: "(server)".into(),
                message: "the server is not running".into(),
            }]),
        }
    }

    /// Free routing tables replaced by reloads once no call uses them any more (off the
    /// shards; `run` does this every turn of its signal loop, `reload` every time).
    pub fn release_retired_tables(&self) {
        if let Some(reloader) = &self.reloader {
            reloader.reap();
        }
    }

    /// A shard whose loop has ended although nobody asked it to stop.
    pub fn stopped_shard(&self) -> Option<usize> {
        if self.stop.load(Ordering::Acquire) {
            return None;
        }
        (0..self.shards()).find(|i| {
            self.hub
                .slot(*i)
                .is_some_and(|s| s.state() == ShardState::Stopped)
        })
    }

    /// One line for systemd's `STATUS=`: what is serving.
    pub fn status_line(&self) -> String {
        format!(
            "serving udp:{} with {} shard{}",
            self.local,
            self.shards(),
            if self.shards() == 1 { "" } else { "s" }
        )
    }

    /// The line printed at startup.
    pub fn startup_line(&self) -> String {
        let metrics = match self.metrics_addr() {
            Some(addr) => format!("metrics at http://{addr}/metrics"),
            None => "metrics disabled".to_string(),
        };
        format!(
            "junction {}: listening on udp:{}, {} shard{} on CPUs {:?}, {metrics}",
            env!("CARGO_PKG_VERSION"),
            self.local,
            self.shards(),
            if self.shards() == 1 { "" } else { "s" },
            self.cpus,
        )
    }

    /// Stop every shard and the metrics endpoint and wait for them. Errors name the shards
    /// that failed.
    pub fn shutdown(mut self) -> Result<(), String> {
        let errors = self.stop_everything();
        if errors.is_empty() {
            return Ok(());
        }
        Err(errors
            .into_iter()
            .map(|(index, e)| format!("shard {index}: {e}"))
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// Idempotent. Returns the error of every shard that did not end cleanly.
    fn stop_everything(&mut self) -> Vec<(usize, String)> {
        self.stop.store(true, Ordering::Release);
        // Wake shards that sleep; busy ones see the flag at their next round. (Before
        // waiting for the HTTP thread: a `POST /reload` in progress waits for the shards to
        // switch or stop.)
        self.wake.wake_all();
        if let Some(http) = self.http.take() {
            http.shutdown();
        }
        let mut errors = Vec::new();
        for (index, handle) in self.shards.iter_mut().enumerate() {
            let Some(handle) = handle.take() else {
                continue;
            };
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push((index, e)),
                Err(e) => errors.push((index, e.to_string())),
            }
        }
        // After the shards: the writer writes what they queued, then ends.
        if let Some(cdr) = self.cdr.take() {
            cdr.shutdown();
        }
        if let Some(watchdog) = self.memory_watchdog.take() {
            let _ = watchdog.join();
        }
        errors
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop_everything();
    }
}

/// Start everything, print the startup line, serve until SIGINT or SIGTERM, reload the
/// configuration file on SIGHUP, stop cleanly.
pub fn run(config: Config) -> Result<(), String> {
    run_with(config, Options::default())
}

/// `run` with options (tests). The calling thread must be the one that receives the signal:
/// the signals are blocked in it and in every thread it starts.
pub fn run_with(config: Config, options: Options) -> Result<(), String> {
    // Block the signals before any thread exists: every thread inherits the mask, so the
    // signals stay pending for `sigtimedwait` below instead of killing the process.
    let signals = ProcessSignals::block()?;
    let source = config.source.clone();
    let summary = logging::Startup::of(&config);
    let notifier = Notifier::from_env();
    let server = match start_with(config, options) {
        Ok(server) => server,
        Err(e) => {
            notifier.status(&format!("failed to start: {e}"));
            return Err(e);
        }
    };
    for warning in server.warnings() {
        crate::log_warn!("startup", warning = warning);
    }
    summary.log(&server);
    // Every shard serves (start_with returned): tell systemd (Type=notify).
    notifier.ready(&server.status_line());
    let mut watchdog = notifier.watchdog_timeout().map(|timeout| {
        Watchdog::new(
            timeout,
            Instant::now(),
            server
                .hub
                .heartbeats()
                .iter()
                .map(|b| b.unwrap_or(0))
                .collect(),
        )
    });
    // Wake often enough to ping the watchdog on time.
    let turn = watchdog.as_ref().map_or(CONTROL_TURN, |w| {
        (w.interval() / 2).clamp(Duration::from_millis(10), CONTROL_TURN)
    });
    loop {
        match signals.wait(turn) {
            Some(Signal::Stop(name)) => {
                crate::log_info!("stopping", signal = name);
                notifier.stopping(&format!("stopping ({name})"));
                break;
            }
            Some(Signal::Reload) => {
                crate::log_info!("reloading", source = source, trigger = "SIGHUP");
                notifier.reloading("reloading the configuration (SIGHUP)");
                let (accepted, lines) = logging::reload(server.reload(), &source);
                notifier.reloaded(&logging::reload_status(accepted, &lines));
            }
            None => {}
        }
        if let Some(watchdog) = watchdog.as_mut() {
            let was_stalled = watchdog.stalled();
            match watchdog.tick(Instant::now(), &server.hub.heartbeats()) {
                Tick::Ping => notifier.watchdog_ping(),
                Tick::Stalled(shards) if !was_stalled => {
                    let shards = shards
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",");
                    crate::log_error!(
                        "shards made no progress: no watchdog ping (systemd restarts junction when WatchdogSec passes)",
                        shards = shards
                    );
                    notifier.status(&format!("shards {shards} made no progress"));
                }
                Tick::Stalled(_) | Tick::Wait => {}
            }
        }
        server.release_retired_tables();
        if let Some(shard) = server.stopped_shard() {
            crate::log_error!("shard stopped unexpectedly, stopping", shard = shard);
            notifier.stopping(&format!("shard {shard} stopped unexpectedly"));
            let detail = match server.shutdown() {
                Ok(()) => String::new(),
                Err(e) => format!(": {e}"),
            };
            return Err(format!("shard {shard} stopped unexpectedly{detail}"));
        }
    }
    let result = server.shutdown();
    if result.is_ok() {
        crate::log_info!("stopped");
    }
    drop(signals);
    result
}

/// What a signal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signal {
    /// SIGINT or SIGTERM (the name).
    Stop(&'static str),
    /// SIGHUP: reload the configuration file.
    Reload,
}

/// SIGINT, SIGTERM and SIGHUP blocked in this thread (and every thread it starts) and
/// collected with `sigtimedwait`; the previous mask is restored on drop.
struct ProcessSignals {
    set: libc::sigset_t,
    previous: libc::sigset_t,
}

impl ProcessSignals {
    fn block() -> Result<ProcessSignals, String> {
        // SAFETY: sigset_t is plain data; the libc calls only read/write the sets we pass.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut previous: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGHUP);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous);
            if rc != 0 {
                return Err(format!(
                    "cannot block SIGINT/SIGTERM/SIGHUP: {}",
                    std::io::Error::from_raw_os_error(rc)
                ));
            }
            Ok(ProcessSignals { set, previous })
        }
    }

    /// The signal received within `timeout`, if any.
    fn wait(&self, timeout: Duration) -> Option<Signal> {
        let timeout = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `set` is initialised; a null siginfo pointer is allowed.
        let signal = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &timeout) };
        match signal {
            libc::SIGINT => Some(Signal::Stop("SIGINT")),
            libc::SIGTERM => Some(Signal::Stop("SIGTERM")),
            libc::SIGHUP => Some(Signal::Reload),
            _ => None, // timeout (EAGAIN) or EINTR
        }
    }
}

impl Drop for ProcessSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `block`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_cpus_are_used_in_order() {
        assert_eq!(shard_cpus(2, Some(&[3, 1, 7])), Ok(vec![3, 1]));
        let error = shard_cpus(3, Some(&[0])).unwrap_err();
        assert!(
            error.contains("server.cpus lists 1 CPUs for 3 shards"),
            "{error}"
        );
    }

    #[test]
    fn default_cpus_wrap_around_the_allowed_cpus() {
        let online = core_affinity::get_core_ids().unwrap().len();
        let cpus = shard_cpus(online * 2 + 1, None).unwrap();
        assert_eq!(cpus.len(), online * 2 + 1);
        assert_eq!(cpus[0], cpus[online]);
        assert_eq!(cpus[1 % online], cpus[online + 1 % online]);
    }
}
