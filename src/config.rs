//! Configuration: TOML, validated with errors that name file, line and key.
//!
//! `parse` reads the whole document and reports every problem it finds, each as a
//! `ConfigError` naming the file, the 1-based line and the dotted key (`trunk[1].send_to`).
//! A configuration that parses also compiles into a `RoutingTable` (parse checks that too).
//! The keys are documented one by one in `tuning/junction.toml`.
//!
//! - `toml_doc.rs`: walking the TOML document with lines and dotted keys.
//! - `server.rs`, `routing_section.rs`, `trunk.rs`, `route.rs`: one section each;
//!   `rules.rs`: number and response-code rules of a trunk; `prefix_file.rs`: a route's
//!   prefixes read from a CSV file; `usages.rs`: usages named by trunks and routes, checked
//!   against each other; `names.rs`, `addr.rs`: values they share;
//!   `observability.rs`: the `[cdr]` and `[log]` sections.
//! - `lint.rs`: warnings about a valid configuration (routes no trunk can use, hairpin risk),
//!   printed by `junction check`.

mod addr;
mod flood;
mod limits_section;
mod lint;
mod names;
mod observability;
mod prefix_file;
mod route;
mod routing_section;
mod rules;
mod server;
mod toml_doc;
mod trunk;
mod usages;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use lint::warnings;
pub use observability::{CdrSettings, LogSettings};
pub use prefix_file::{PrefixFile, PREFIX_FILE_ERRORS_MAX};
pub use route::{PRIORITY_DEFAULT, REJECT_CODE_DEFAULT, REJECT_REASON_BYTES_MAX, WEIGHT_MAX};
pub use server::{online_cpus, CORES_MAX};
pub use trunk::{
    PROBE_DEFAULT, PROGRESS_TIMEOUT_DEFAULT, PROGRESS_TIMEOUT_MAX, REFUSE_IN_CODE_DEFAULT,
};

pub use crate::routing::HeaderPolicy;
use crate::routing::{Probe, UnknownSource};

/// The configuration junction runs with when started without `--config`: listens on
/// loopback and routes every number to a loopback trunk.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

#[derive(Clone, Debug)]
pub struct Config {
    /// Where it came from: a path, or "<embedded default>".
    pub source: String,
    pub server: Server,
    /// The `[routing]` section.
    pub routing: RoutingSettings,
    pub trunks: Vec<TrunkConfig>,
    pub routes: Vec<RouteConfig>,
    /// The `[cdr]` section (`None`: no call detail records).
    pub cdr: Option<CdrSettings>,
    /// The `[log]` section.
    pub log: LogSettings,
    /// The `[flood]` section.
    pub flood: crate::sip::flood::FloodSettings,
    /// The `[limits]` section.
    pub limits: crate::limits::InputLimits,
}

/// Settings of the routing model as a whole (`[routing]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingSettings {
    /// Once an 18x with a To-tag has been relayed upstream, may a failure of that branch
    /// still move the call to the next attempt? Default false.
    pub failover_after_provisional: bool,
}

#[derive(Clone, Debug)]
pub struct Server {
    /// Number of shards (one pinned executor each), resolved ("auto" = online CPUs).
    pub cores: usize,
    /// CPUs to pin shard i to (`cpus[i]`); `None` = 0..cores.
    pub cpus: Option<Vec<usize>>,
    /// The UDP address every shard's socket binds.
    pub listen: SocketAddr,
    /// The address peers reach us at, put in our Via and Record-Route. Defaults to `listen`
    /// (required when `listen` is an unspecified address such as 0.0.0.0).
    pub advertise: SocketAddr,
    /// Metrics HTTP address; `None` disables the endpoint.
    pub metrics: Option<SocketAddr>,
    /// What requests from addresses that match no trunk get (default: nothing).
    pub unknown_source: UnknownSource,
    /// The memory cap (MiB of resident memory): near it, new calls get 503.
    pub max_memory_mb: u64,
    /// RFC 7339 overload control feedback to trunks that ask for it (default: on).
    pub overload_feedback: bool,
    /// Retry-After (seconds) of junction's 503s for temporary conditions; 0 leaves the
    /// header out.
    pub retry_after_s: u32,
    /// `shard_ports`: the first per-shard port (shard i also listens on it + i and puts that
    /// port in its Via and Record-Route, so the peers' answers reach the call's owner);
    /// `None`: every shard advertises the shared `listen` port.
    pub shard_ports: Option<u16>,
}

#[derive(Clone, Debug)]
pub struct TrunkConfig {
    pub name: String,
    /// Source addresses that identify this trunk: ip, ip:port or cidr, as written.
    pub peers: Vec<String>,
    /// Where calls routed to this trunk are sent.
    pub send_to: Option<SocketAddr>,
    /// The usages walked, in order, for calls from this trunk. `None`: the trunk may use
    /// every route (ordered as if all carried one usage).
    pub usages: Option<Vec<String>>,
    /// Normalization of the called and calling numbers of calls from this trunk.
    pub inbound: Vec<RuleConfig>,
    /// Translation of the called / calling number of calls sent to this trunk.
    pub outbound_called: Vec<RuleConfig>,
    pub outbound_calling: Vec<RuleConfig>,
    /// Translation of final responses received from this trunk.
    pub response_codes: Vec<ResponseCodeConfig>,
    /// Strip a leading `+` from numbers sent to this trunk (after outbound translation).
    pub remove_plus: bool,
    /// Send P-Asserted-Identity to this trunk.
    pub forward_pai: bool,
    /// Offer RFC 7339 overload control to this trunk and honour what it asks for.
    pub overload_control: bool,
    /// No 18x/2xx within this long: next attempt. Zero: no progress timer.
    pub progress_timeout: Duration,
    pub max_calls: Option<u32>,
    pub max_cps: Option<u32>,
    pub max_early: Option<u32>,
    pub probe: Option<Probe>,
    /// Inside the trust domain (RFC 3325): its P-Asserted-Identity is believed (the calling
    /// number comes from it) and PAI is sent to it.
    pub trusted: bool,
    /// RFC 8224 Identity, Diversion and History-Info headers of requests sent to it.
    pub identity: HeaderPolicy,
    pub diversion: HeaderPolicy,
    pub history_info: HeaderPolicy,
    /// Calls from this trunk route on the Request-URI's `rn` (number portability) when it
    /// has one.
    pub route_on_rn: bool,
    /// Ingress admission: concurrent calls and new calls per second this trunk may send
    /// junction (exact over all shards), and the status of a call over them.
    pub max_calls_in: Option<u32>,
    pub max_cps_in: Option<u32>,
    pub refuse_in_code: u16,
    /// Passive health: down after this many INVITE attempts in a row failed without any
    /// answer (timeouts, ICMP unreachable); `None`: only probing marks it down.
    pub down_after_failures: Option<u32>,
    /// The longest an answered call from or to this trunk may last (`max_duration_s`).
    pub max_duration: Option<Duration>,
    /// Line in the file (for messages).
    pub line: usize,
}

impl Default for TrunkConfig {
    /// A trunk with no name, no addresses and every option at its default.
    fn default() -> TrunkConfig {
        TrunkConfig {
            name: String::new(),
            peers: Vec::new(),
            send_to: None,
            usages: None,
            inbound: Vec::new(),
            outbound_called: Vec::new(),
            outbound_calling: Vec::new(),
            response_codes: Vec::new(),
            remove_plus: false,
            forward_pai: true,
            overload_control: true,
            progress_timeout: PROGRESS_TIMEOUT_DEFAULT,
            max_calls: None,
            max_cps: None,
            max_early: None,
            probe: None,
            trusted: false,
            identity: HeaderPolicy::Pass,
            diversion: HeaderPolicy::Pass,
            history_info: HeaderPolicy::Pass,
            route_on_rn: false,
            max_calls_in: None,
            max_cps_in: None,
            refuse_in_code: REFUSE_IN_CODE_DEFAULT,
            down_after_failures: None,
            max_duration: None,
            line: 0,
        }
    }
}

/// Which numbers an inbound rule applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuleNumbers {
    Called,
    Calling,
    #[default]
    Both,
}

/// A number rule as written: the first rule of a list whose `pattern` matches the whole
/// number replaces it with `replace` (`${1}`-style groups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleConfig {
    pub pattern: String,
    pub replace: String,
    /// Inbound rules only; outbound rules apply to the number of their list.
    pub numbers: RuleNumbers,
    pub line: usize,
}

/// A response-code rule: a final response `code` (and, if given, Q.850 `cause` from the
/// Reason header) from the trunk is handled as `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseCodeConfig {
    pub code: u16,
    pub cause: Option<u16>,
    pub to: u16,
    pub line: usize,
}

#[derive(Clone, Debug)]
pub struct RouteConfig {
    pub name: String,
    /// Anchored regex on the called number, or...
    pub pattern: Option<String>,
    /// ...prefixes (longest wins), or...
    pub prefixes: Vec<String>,
    /// ...prefixes read from a CSV file.
    pub prefix_file: Option<Arc<PrefixFile>>,
    /// The usages this route carries (empty: only trunks without usages can use it).
    pub usages: Vec<String>,
    /// Egress trunk names, in order.
    pub trunks: Vec<String>,
    /// Round-robin weights, one per trunk (empty: all 1).
    pub weights: Vec<u32>,
    /// Calling number set on calls taking this route (before outbound translation).
    pub caller_id: Option<String>,
    /// Lower goes first among matching routes (default `PRIORITY_DEFAULT`).
    pub priority: u32,
    /// The route's prefixes or pattern are matched against the Request-URI's `rn`
    /// (number portability routing number) when the call has one.
    pub route_on_rn: bool,
    /// `action = "reject"`: the route answers the calls it matches with this (and has no
    /// trunks); `None`: an ordinary route.
    pub reject: Option<RejectConfig>,
    /// The longest an answered call taking this route may last (`max_duration_s`).
    pub max_duration: Option<Duration>,
    /// Time-of-day windows (`when`, as written) in `time_zone` (`None`: UTC); empty:
    /// always.
    pub when: Vec<String>,
    pub time_zone: Option<String>,
    pub line: usize,
}

/// What a reject route answers: a final status (400-699) and an optional reason phrase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectConfig {
    pub code: u16,
    pub reason: Option<String>,
}

impl Default for RouteConfig {
    /// A route with no name, no numbers, no trunks and every option at its default.
    fn default() -> RouteConfig {
        RouteConfig {
            name: String::new(),
            pattern: None,
            prefixes: Vec::new(),
            prefix_file: None,
            usages: Vec::new(),
            trunks: Vec::new(),
            weights: Vec::new(),
            caller_id: None,
            priority: PRIORITY_DEFAULT,
            route_on_rn: false,
            reject: None,
            max_duration: None,
            when: Vec::new(),
            time_zone: None,
            line: 0,
        }
    }
}

/// A problem in a configuration file, precise enough to fix without guessing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `trunk[2].send_to`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}: {}", self.file, l, self.key, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.key, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where the embedded default says it came from.
pub const EMBEDDED_SOURCE: &str = "<embedded default>";

/// Parse and validate a configuration. `file` names it in error messages (and prefix files
/// are found relative to its directory). Every problem is reported, not only the first.
pub fn parse(text: &str, file: &str) -> Result<Config, Vec<ConfigError>> {
    parse_compiled(text, file).map(|(config, _)| config)
}

/// `parse`, also returning the routing table it compiled to validate the configuration
/// (compiling a million prefixes twice is worth avoiding).
pub fn parse_compiled(
    text: &str,
    file: &str,
) -> Result<(Config, crate::routing::RoutingTable), Vec<ConfigError>> {
    let mut doc = toml_doc::Doc::new(file, text);
    let parsed = match toml_edit::ImDocument::parse(text) {
        Ok(d) => d,
        Err(e) => {
            doc.syntax_error(&e);
            return Err(doc.errors);
        }
    };
    let root = toml_doc::Section::root(parsed.as_table());
    root.check_keys(
        &mut doc,
        &[
            "server", "routing", "trunk", "route", "cdr", "log", "flood", "limits",
        ],
        &[],
    );
    let server = server::read(&mut doc, &root);
    let routing = routing_section::read(&mut doc, &root);
    let (trunks, trunk_infos) = trunk::read(&mut doc, &root);
    let (routes, route_usages) = route::read(&mut doc, &root, &trunk_infos, Path::new(file));
    usages::check(&mut doc, &trunk_infos, &route_usages);
    let cdr = observability::read_cdr(&mut doc, &root, Path::new(file));
    let log = observability::read_log(&mut doc, &root);
    let flood = flood::read(&mut doc, &root);
    let limits = limits_section::read(&mut doc, &root);
    let (Some(server), true) = (server, doc.errors.is_empty()) else {
        // In file order (problems without a line last); the sort is stable.
        doc.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        return Err(doc.errors);
    };
    let config = Config {
        source: file.to_string(),
        server,
        routing,
        trunks,
        routes,
        cdr,
        log,
        flood,
        limits,
    };
    // Whatever parses must compile; this also catches limits only the compiled form has.
    let table = crate::routing::RoutingTable::compile(&config)?;
    Ok((config, table))
}

/// Read and parse a configuration file.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    load_compiled(path).map(|(config, _)| config)
}

/// `load`, also returning the compiled routing table (see `parse_compiled`).
pub fn load_compiled(
    path: &Path,
) -> Result<(Config, crate::routing::RoutingTable), Vec<ConfigError>> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_compiled(&text, &file),
        Err(e) => Err(vec![ConfigError {
            file,
            line: None,
            key: "(file)".into(),
            message: format!("cannot read the configuration: {e}"),
        }]),
    }
}

/// The configuration in `EMBEDDED_DEFAULT`.
pub fn embedded_default() -> Config {
    match parse(EMBEDDED_DEFAULT, EMBEDDED_SOURCE) {
        Ok(config) => config,
        // Our own bug, caught by the test that parses it.
        Err(errors) => panic!(
            "the embedded default configuration is invalid: {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}
