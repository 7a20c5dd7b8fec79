//! `junction route-test CONFIG`: how the configuration routes a call, evaluated offline.
//!
//! ```text
//! junction route-test CONFIG --from TRUNK|IP[:PORT] --called NUMBER [--calling NUMBER]
//!                            [--rotation N] [--down TRUNK[,TRUNK...]]
//! junction route-test CONFIG --file FILE [--rotation N] [--down ...]
//! ```
//!
//! One call prints every step: the ingress trunk and the peer entry that matched, the
//! inbound rules applied, the usage walk (each usage, the routes that matched in order and
//! why, what became of each of their trunks), the attempt list with each attempt's
//! translated numbers, or the final answer when nothing routes. `--file` reads one call per
//! line (`from,called[,calling]`; `#` comments and blank lines skipped) and prints one
//! compact line per call, to diff what a configuration change moves; call n of the file
//! (from 0) uses rotation N + n, as successive calls would.
//!
//! `--format tsv` (or `csv`) with `--file` prints one machine-readable line per call instead,
//! after a `#` header line: `from called calling ingress called_norm calling_norm result`,
//! then `trunk called calling` per attempt (the numbers as sent to that trunk); `result` is
//! `route`, `404`, `503`, `403`, a reject route's status or `drop`, and a missing number is
//! `-`. `junction-load --expect` reads it to check at load that every call reached the trunk
//! it should.
//!
//! The walk printed is the walk routed: the same code runs, with an observer recording it.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use junction::config::{Config, RouteConfig, RuleConfig, TrunkConfig};
use junction::routing::peer::PeerAddr;
use junction::routing::walk::{Match, Observer, Outcome};
use junction::routing::{Decision, Number, RoutingTable, TrunkId, UnknownSource};

use super::{load, shown};

/// The command line of `route-test` (parsed in `args.rs`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub config: String,
    pub from: Option<String>,
    pub called: Option<String>,
    pub calling: Option<String>,
    pub file: Option<String>,
    pub rotation: u64,
    pub down: Vec<String>,
    pub format: Format,
    /// `--at TIME`: the wall-clock time for routes with `when` windows (default: now).
    pub at: Option<String>,
}

/// How `--file` prints its calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// One readable line per call.
    #[default]
    Text,
    /// Tab-separated fields (see the module documentation).
    Tsv,
    /// The same fields, comma-separated.
    Csv,
}

/// Run it: 0 when every call could be evaluated, 2 when the configuration or the arguments
/// (or a line of the file) are wrong.
pub fn run(args: &Args) -> ExitCode {
    let (config, table) = match load(Some(&args.config)) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    let mut down = Vec::new();
    for name in &args.down {
        match table.trunk_id(name) {
            Some(id) => down.push(id),
            None => {
                eprintln!("junction: --down {name}: no trunk has this name");
                return ExitCode::from(2);
            }
        }
    }
    let at = match args.at.as_deref().map(parse_at).transpose() {
        Ok(at) => at.unwrap_or_else(|| jiff::Timestamp::now().as_second()),
        Err(m) => {
            eprintln!("junction: {m}");
            return ExitCode::from(2);
        }
    };
    let mut ctx = Ctx {
        config: &config,
        table: &table,
        rotation: args.rotation,
        down,
        at,
    };
    match (&args.file, &args.from, &args.called) {
        (Some(file), _, _) => run_file(&mut ctx, file, args.format),
        (None, Some(from), Some(called)) => {
            match ctx.evaluate(
                from,
                called.as_bytes(),
                args.calling.as_deref().map(str::as_bytes),
            ) {
                Ok(call) => {
                    print!("{}", ctx.explain(&call));
                    ExitCode::SUCCESS
                }
                Err(m) => {
                    eprintln!("junction: {m}");
                    ExitCode::from(2)
                }
            }
        }
        _ => ExitCode::from(2),
    }
}

fn run_file(ctx: &mut Ctx<'_>, file: &str, format: Format) -> ExitCode {
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("junction: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut bad = 0;
    let first_rotation = ctx.rotation;
    let mut calls = 0u64;
    let sep = if format == Format::Csv { "," } else { "\t" };
    if format != Format::Text {
        println!(
            "#{}",
            [
                "from",
                "called",
                "calling",
                "ingress",
                "called_norm",
                "calling_norm",
                "result",
                "trunk",
                "called_sent",
                "calling_sent",
                "..."
            ]
            .join(sep)
        );
    }
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(raw);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (from, called, calling) = match fields.as_slice() {
            [from, called] => (*from, *called, None),
            [from, called, calling] => (*from, *called, Some(*calling)),
            _ => {
                eprintln!(
                    "{file}:{}: expected from,called[,calling]; found {line:?}",
                    i + 1
                );
                bad += 1;
                continue;
            }
        };
        ctx.rotation = first_rotation.wrapping_add(calls);
        calls += 1;
        match ctx.evaluate(from, called.as_bytes(), calling.map(str::as_bytes)) {
            Ok(call) if format != Format::Text => {
                println!("{}", ctx.fields(from, called, calling, &call).join(sep))
            }
            Ok(call) => println!("{}", ctx.compact(line, &call)),
            Err(m) => {
                eprintln!("{file}:{}: {m}", i + 1);
                bad += 1;
            }
        }
    }
    if bad > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// One step of the walk, as recorded.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// A route that matched, skipped: its time-of-day windows are closed.
    Closed(u16),
    Usage(Option<u16>),
    Route(u16, Match, bool),
    Trunk(TrunkId, Outcome),
}

#[derive(Default)]
struct Recorder(Vec<Step>);

impl Observer for Recorder {
    fn usage(&mut self, usage: Option<u16>) {
        self.0.push(Step::Usage(usage));
    }
    fn route(&mut self, route: u16, how: Match, again: bool) {
        self.0.push(Step::Route(route, how, again));
    }
    fn trunk(&mut self, _route: u16, trunk: TrunkId, outcome: Outcome) {
        self.0.push(Step::Trunk(trunk, outcome));
    }
    fn closed(&mut self, route: u16) {
        self.0.push(Step::Closed(route));
    }
}

/// How the ingress trunk was found.
enum Ingress {
    /// Named on the command line.
    Named(TrunkId),
    /// By source address: the peer entry that matched.
    Source(SocketAddr, PeerAddr, TrunkId),
    /// No trunk: an unknown source.
    Unknown(SocketAddr),
}

/// A number before and after a rule list.
struct Rewrite {
    before: Vec<u8>,
    after: Vec<u8>,
    rule: Option<usize>,
}

struct Attempt {
    trunk: TrunkId,
    route: Option<u16>,
    called: Rewrite,
    /// The calling number given to the outbound rules (the route's caller_id, or the
    /// normalized calling number), and their result.
    calling: Option<Rewrite>,
    /// Results after `remove_plus` (equal to the rules' results when it changed nothing).
    called_sent: Vec<u8>,
    calling_sent: Option<Vec<u8>>,
}

struct Call {
    ingress: Ingress,
    called: Rewrite,
    /// The called number's parameters (`;npdi;rn=...`), kept on the Request-URI.
    params: Vec<u8>,
    /// The routing number (`rn`), normalized like the called number.
    rn: Option<Rewrite>,
    calling: Option<Rewrite>,
    steps: Vec<Step>,
    decision: Decision,
    attempts: Vec<Attempt>,
}

struct Ctx<'a> {
    config: &'a Config,
    table: &'a RoutingTable,
    rotation: u64,
    down: Vec<TrunkId>,
    /// Seconds since the Unix epoch: the time routes' `when` windows are judged at.
    at: i64,
}

impl Ctx<'_> {
    fn trunk_config(&self, id: TrunkId) -> Option<&TrunkConfig> {
        self.config.trunks.get(id.0 as usize)
    }

    fn route_config(&self, route: u16) -> Option<&RouteConfig> {
        self.config.routes.get(route as usize)
    }

    fn trunk_name(&self, id: TrunkId) -> String {
        self.table
            .trunk(id)
            .map_or_else(|| format!("trunk#{}", id.0), |t| t.name.clone())
    }

    fn route_name(&self, route: u16) -> String {
        self.table
            .route_name(route)
            .map_or_else(|| format!("route#{route}"), String::from)
    }

    fn resolve(&self, from: &str) -> Result<Ingress, String> {
        if let Some(id) = self.table.trunk_id(from) {
            return Ok(Ingress::Named(id));
        }
        let addr = from.parse::<SocketAddr>().ok().or_else(|| {
            let bare = from
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(from);
            bare.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 5060))
        });
        let Some(addr) = addr else {
            return Err(format!(
                "--from {from:?}: no trunk has this name, and it is not an address (IP or IP:PORT)"
            ));
        };
        Ok(match self.table.ingress_entry(addr) {
            Some((entry, id)) => Ingress::Source(addr, entry, id),
            None => Ingress::Unknown(addr),
        })
    }

    fn evaluate(&self, from: &str, called: &[u8], calling: Option<&[u8]>) -> Result<Call, String> {
        let ingress = self.resolve(from)?;
        let id = match ingress {
            Ingress::Named(id) | Ingress::Source(_, _, id) => Some(id),
            Ingress::Unknown(_) => None,
        };
        let normalize = |which: Number, number: &[u8]| -> Rewrite {
            let mut after = Vec::new();
            let rule = match id {
                Some(id) => self.table.normalize(id, which, number, &mut after),
                None => {
                    after.extend_from_slice(number);
                    None
                }
            };
            Rewrite {
                before: number.to_vec(),
                after,
                rule,
            }
        };
        // As the proxy does: the number is the user part up to its first ';'; its
        // parameters stay with it, and `rn` (RFC 4694) may route the call.
        let (number, params) = junction::routing::split_called(called);
        let rn = junction::routing::number_param(params, b"rn")
            .filter(|r| !r.is_empty())
            .map(|r| normalize(Number::Called, r));
        let called = normalize(Number::Called, number);
        let calling = calling.map(|c| {
            if is_anonymous(c) {
                Rewrite {
                    before: c.to_vec(),
                    after: c.to_vec(),
                    rule: None,
                }
            } else {
                normalize(Number::Calling, c)
            }
        });
        let mut recorder = Recorder::default();
        let (decision, attempts) = match id {
            None => (Decision::NoRoute, Vec::new()),
            Some(id) => {
                let usable = |t: TrunkId| !self.down.contains(&t);
                let decision = self.table.walk_call(
                    id,
                    &called.after,
                    rn.as_ref().map(|r| r.after.as_slice()),
                    self.rotation,
                    &usable,
                    Some(self.at),
                    &mut recorder,
                );
                let attempts = match decision {
                    Decision::Route { attempts, .. } => (0..attempts.len())
                        .filter_map(|i| {
                            let trunk = attempts.get(i)?;
                            Some(self.attempt(trunk, attempts.route(i), &called, calling.as_ref()))
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                (decision, attempts)
            }
        };
        Ok(Call {
            ingress,
            called,
            params: params.to_vec(),
            rn,
            calling,
            steps: recorder.0,
            decision,
            attempts,
        })
    }

    fn attempt(
        &self,
        trunk: TrunkId,
        route: Option<u16>,
        called: &Rewrite,
        calling: Option<&Rewrite>,
    ) -> Attempt {
        let outbound = |which: Number, number: &[u8]| -> (Rewrite, Vec<u8>) {
            let mut after = Vec::new();
            let rule = self.table.translate_rules(trunk, which, number, &mut after);
            let mut sent = Vec::new();
            self.table.translate(trunk, which, number, &mut sent);
            (
                Rewrite {
                    before: number.to_vec(),
                    after,
                    rule,
                },
                sent,
            )
        };
        let (called, called_sent) = outbound(Number::Called, &called.after);
        let caller_id = route.and_then(|r| self.table.route_caller_id(r));
        // `anonymous` (RFC 3323) is no number: never replaced or translated.
        let calling_in = match calling {
            Some(c) if is_anonymous(&c.after) => {
                let same = Rewrite {
                    before: c.after.clone(),
                    after: c.after.clone(),
                    rule: None,
                };
                return Attempt {
                    trunk,
                    route,
                    called: outbound(Number::Called, &called.after).0,
                    called_sent: outbound(Number::Called, &called.after).1,
                    calling_sent: Some(c.after.clone()),
                    calling: Some(same),
                };
            }
            _ => caller_id.or(calling.map(|c| c.after.as_slice())),
        };
        let (calling, calling_sent) = match calling_in {
            Some(number) => {
                let (rewrite, sent) = outbound(Number::Calling, number);
                (Some(rewrite), Some(sent))
            }
            None => (None, None),
        };
        Attempt {
            trunk,
            route,
            called,
            calling,
            called_sent,
            calling_sent,
        }
    }

    /// Where a rule is written, and what it says.
    fn rule_text(&self, trunk: TrunkId, list: &str, i: usize) -> String {
        let rules: Option<&Vec<RuleConfig>> = self.trunk_config(trunk).map(|t| match list {
            "inbound" => &t.inbound,
            "outbound_called" => &t.outbound_called,
            _ => &t.outbound_calling,
        });
        match rules.and_then(|r| r.get(i)) {
            Some(r) => format!(
                "{list}[{i}] '{}' -> '{}' (line {})",
                r.pattern, r.replace, r.line
            ),
            None => format!("{list}[{i}]"),
        }
    }

    fn rewrite_line(&self, what: &str, r: &Rewrite, trunk: TrunkId, list: &str) -> String {
        match r.rule {
            Some(i) => format!(
                "{what} {} -> {}: {}",
                shown(&r.before),
                shown(&r.after),
                self.rule_text(trunk, list, i)
            ),
            None if self
                .trunk_config(trunk)
                .is_some_and(|t| rules_of(t, list).is_empty()) =>
            {
                format!("{what} {}: no {list} rules", shown(&r.before))
            }
            None => format!(
                "{what} {}: unchanged (no {list} rule matches)",
                shown(&r.before)
            ),
        }
    }

    fn ingress_line(&self, ingress: &Ingress) -> String {
        let describe = |id: TrunkId| {
            let line = self
                .trunk_config(id)
                .map_or(String::new(), |t| format!(", line {}", t.line));
            format!("trunk {:?} (trunk[{}]{line})", self.trunk_name(id), id.0)
        };
        match ingress {
            Ingress::Named(id) => format!("from: {} (named on the command line)", describe(*id)),
            Ingress::Source(addr, entry, id) => {
                format!("from {addr}: {}, peer entry {entry}", describe(*id))
            }
            Ingress::Unknown(addr) => format!("from {addr}: no trunk has a peer entry covering it"),
        }
    }

    fn unknown_answer(&self) -> &'static str {
        match self.table.unknown_source() {
            UnknownSource::Reject => {
                "403 Forbidden (unknown source; server.unknown_source = \"reject\")"
            }
            UnknownSource::Drop => {
                "no answer: dropped (unknown source; server.unknown_source = \"drop\")"
            }
        }
    }

    fn why(&self, route: u16, how: Match, called: &[u8]) -> String {
        let r = self.route_config(route);
        let priority = r.map_or(0, |r| r.priority);
        match how {
            Match::Pattern => format!(
                "pattern '{}', priority {priority}",
                r.and_then(|r| r.pattern.as_deref()).unwrap_or("?")
            ),
            Match::Prefix(len) => {
                let prefix = called.get(..len as usize).unwrap_or(&[]);
                let file = r
                    .and_then(|r| r.prefix_file.as_ref())
                    .and_then(|f| f.line_of(prefix).map(|l| format!(", {}:{l}", f.path)));
                format!(
                    "prefix {} ({} byte{}{}), priority {priority}",
                    shown(prefix),
                    len,
                    if len == 1 { "" } else { "s" },
                    file.unwrap_or_default()
                )
            }
        }
    }

    fn explain(&self, call: &Call) -> String {
        let mut o = String::new();
        let mut line = |s: String| {
            o.push_str(&s);
            o.push('\n');
        };
        line(format!("config: {}", self.config.source));
        line(self.ingress_line(&call.ingress));
        let id = match call.ingress {
            Ingress::Named(id) | Ingress::Source(_, _, id) => id,
            Ingress::Unknown(_) => {
                line(format!("result: {}", self.unknown_answer()));
                return o;
            }
        };
        line(format!("inbound normalization ({}):", self.trunk_name(id)));
        line(format!(
            "  {}",
            self.rewrite_line("called", &call.called, id, "inbound")
        ));
        match &call.calling {
            Some(c) => line(format!(
                "  {}",
                self.rewrite_line("calling", c, id, "inbound")
            )),
            None => line("  calling: none given (--calling)".into()),
        }
        let usages = match self.table.trunk(id).and_then(|t| t.usages()) {
            Some(u) => u
                .iter()
                .map(|&u| format!("{:?}", self.table.usage_name(u).unwrap_or("?")))
                .collect::<Vec<_>>()
                .join(", "),
            None => "none: it may use every route".into(),
        };
        if !call.params.is_empty() {
            line(format!(
                "  parameters {} stay on the Request-URI",
                shown(&call.params)
            ));
        }
        if let Some(rn) = &call.rn {
            line(format!(
                "  {}",
                self.rewrite_line("rn (routing number)", rn, id, "inbound")
            ));
        }
        let on_rn = self.table.trunk(id).is_some_and(|t| t.route_on_rn);
        let walked = match &call.rn {
            Some(rn) if on_rn => {
                line(format!(
                    "  {} routes on rn (route_on = \"rn\")",
                    self.trunk_name(id)
                ));
                &rn.after
            }
            _ => &call.called.after,
        };
        line(format!(
            "usage walk for called {} (usages of {}: {usages}):",
            shown(walked),
            self.trunk_name(id)
        ));
        let mut attempt_no = 0;
        let mut routes_in_usage = 0;
        let flush = |line: &mut dyn FnMut(String), routes: &mut usize, had_usage: bool| {
            if had_usage && *routes == 0 {
                line("    no route of this usage matches".into());
            }
            *routes = 0;
        };
        let mut had_usage = false;
        let mut at_rn;
        for step in &call.steps {
            match *step {
                Step::Usage(u) => {
                    flush(&mut line, &mut routes_in_usage, had_usage);
                    had_usage = true;
                    match u {
                        Some(u) => line(format!(
                            "  usage {:?}:",
                            self.table.usage_name(u).unwrap_or("?")
                        )),
                        None => line("  every route:".into()),
                    }
                }
                Step::Route(route, how, again) => {
                    routes_in_usage += 1;
                    let at = self
                        .route_config(route)
                        .map_or(String::new(), |r| format!(", line {}", r.line));
                    let number = match &call.rn {
                        Some(rn) if self.table.route_on_rn(route) => {
                            at_rn = " on rn";
                            &rn.after
                        }
                        _ => {
                            at_rn = "";
                            walked
                        }
                    };
                    let mut text = format!(
                        "    route {:?} (route[{route}]{at}){at_rn}: {}",
                        self.route_name(route),
                        self.why(route, how, number)
                    );
                    if again {
                        text.push_str("; already walked under an earlier usage");
                    }
                    if let Some(r) = self.table.route_reject(route).filter(|_| !again) {
                        text.push_str(&format!(
                            "; reject route: answers {}, the walk stops here",
                            reject_text(r)
                        ));
                    }
                    line(text);
                }
                Step::Closed(route) => {
                    let at = self
                        .table
                        .route_schedule(route)
                        .map_or_else(String::new, |s| s.civil(self.at));
                    let when = self
                        .route_config(route)
                        .map_or_else(String::new, |r| r.when.join(", "));
                    line(format!(
                        "    route {:?} (route[{route}]): matches, but skipped: outside its \
                         windows ({when}) at {at}",
                        self.route_name(route)
                    ));
                }
                Step::Trunk(trunk, outcome) => {
                    let what = match outcome {
                        Outcome::Added => {
                            attempt_no += 1;
                            format!("attempt {attempt_no}")
                        }
                        Outcome::Ingress => "skipped: the call came from it".into(),
                        Outcome::Unusable => "skipped: down or full (--down)".into(),
                        Outcome::Repeat => "skipped: already an attempt".into(),
                        Outcome::Full => {
                            format!(
                                "skipped: {} attempts at most",
                                junction::routing::ATTEMPTS_MAX
                            )
                        }
                    };
                    line(format!("      {}: {what}", self.trunk_name(trunk)));
                }
            }
        }
        flush(&mut line, &mut routes_in_usage, had_usage);
        match call.decision {
            Decision::NoRoute => {
                line("result: 404 Not Found (no route matches the called number for this trunk's usages)".into());
            }
            Decision::NoTrunk => {
                line("result: 503 Service Unavailable (routes matched, but no usable trunk: each was the ingress trunk, down or full)".into());
            }
            Decision::Reject { route } => {
                let answer = self
                    .table
                    .route_reject(route)
                    .map_or_else(String::new, reject_text);
                line(format!(
                    "result: {answer} (reject route {:?})",
                    self.route_name(route)
                ));
            }
            Decision::Route { .. } => {
                line(format!("attempts ({}):", call.attempts.len()));
                for (i, a) in call.attempts.iter().enumerate() {
                    let t = self.table.trunk(a.trunk);
                    let dest = t
                        .and_then(|t| t.send_to)
                        .map_or("?".to_string(), |d| d.to_string());
                    let via = a.route.map_or(String::new(), |r| {
                        format!(" via route {:?}", self.route_name(r))
                    });
                    line(format!(
                        "  {}. {} ({dest}){via}",
                        i + 1,
                        self.trunk_name(a.trunk)
                    ));
                    line(format!(
                        "     {}",
                        self.rewrite_line("called", &a.called, a.trunk, "outbound_called")
                    ));
                    let anonymous = call
                        .calling
                        .as_ref()
                        .is_some_and(|c| is_anonymous(&c.after));
                    if let Some(caller_id) = a
                        .route
                        .and_then(|r| self.table.route_caller_id(r))
                        .filter(|_| !anonymous)
                    {
                        line(format!(
                            "     calling set to {} by the route's caller_id",
                            shown(caller_id)
                        ));
                    }
                    match &a.calling {
                        Some(c) => line(format!(
                            "     {}",
                            self.rewrite_line("calling", c, a.trunk, "outbound_calling")
                        )),
                        None => line("     calling: none".into()),
                    }
                    line(format!("     {}", self.identity_line(id, a.trunk)));
                    if t.is_some_and(|t| t.remove_plus) {
                        let mut m =
                            format!("     remove_plus: sends called {}", shown(&a.called_sent));
                        if let Some(c) = &a.calling_sent {
                            m.push_str(&format!(", calling {}", shown(c)));
                        }
                        line(m);
                    }
                    if let Some(t) = t {
                        let timer = if t.progress_timeout.is_zero() {
                            "no progress timer".to_string()
                        } else {
                            format!("progress timeout {} s", t.progress_timeout.as_secs())
                        };
                        line(format!("     {timer}"));
                    }
                }
            }
        }
        o
    }

    /// The machine-readable fields of one call (`--format tsv|csv`).
    fn fields(&self, from: &str, called: &str, calling: Option<&str>, call: &Call) -> Vec<String> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut f = vec![
            from.to_string(),
            called.to_string(),
            calling.unwrap_or("-").to_string(),
        ];
        let id = match call.ingress {
            Ingress::Named(id) | Ingress::Source(_, _, id) => id,
            Ingress::Unknown(_) => {
                let result = match self.table.unknown_source() {
                    UnknownSource::Reject => "403",
                    UnknownSource::Drop => "drop",
                };
                f.extend(["-", "-", "-", result].map(String::from));
                return f;
            }
        };
        f.push(self.trunk_name(id));
        f.push(text(&call.called.after));
        f.push(call.calling.as_ref().map_or("-".into(), |c| text(&c.after)));
        match call.decision {
            Decision::NoRoute => f.push("404".into()),
            Decision::NoTrunk => f.push("503".into()),
            // A reject route's status, like the other answers junction gives itself.
            Decision::Reject { route } => f.push(
                self.table
                    .route_reject(route)
                    .map_or(403, |r| r.code)
                    .to_string(),
            ),
            Decision::Route { .. } => {
                f.push("route".into());
                for a in &call.attempts {
                    f.push(self.trunk_name(a.trunk));
                    f.push(text(&a.called_sent));
                    f.push(a.calling_sent.as_deref().map_or("-".into(), text));
                }
            }
        }
        f
    }

    /// What happens to the caller's P-Asserted-Identity on a call from `ingress` to `egress`
    /// (the proxy's rule: kept only between trusted trunks toward one that takes PAI).
    fn identity_line(&self, ingress: TrunkId, egress: TrunkId) -> String {
        let (i, e) = (self.table.trunk(ingress), self.table.trunk(egress));
        let name = |t: TrunkId| self.trunk_name(t);
        match (i, e) {
            (Some(i), _) if !i.trusted => format!(
                "P-Asserted-Identity: removed ({} is not trusted: the calling number is From's)",
                name(ingress)
            ),
            (_, Some(e)) if !e.trusted => format!(
                "P-Asserted-Identity: removed ({} is not trusted; with Privacy: id, From is \
                 anonymized)",
                name(egress)
            ),
            (_, Some(e)) if !e.forward_pai => format!(
                "P-Asserted-Identity: removed ({} has forward_pai = false)",
                name(egress)
            ),
            _ => "P-Asserted-Identity: sent, translated like the calling number (both trunks \
                  trusted)"
                .to_string(),
        }
    }

    /// One line per call: `INPUT => ingress called' calling' => attempts` or the answer.
    fn compact(&self, input: &str, call: &Call) -> String {
        let id = match call.ingress {
            Ingress::Named(id) | Ingress::Source(_, _, id) => id,
            Ingress::Unknown(_) => {
                let answer = match self.table.unknown_source() {
                    UnknownSource::Reject => "403 unknown source",
                    UnknownSource::Drop => "dropped: unknown source",
                };
                return format!("{input} => {answer}");
            }
        };
        let calling = call.calling.as_ref().map_or("-".to_string(), |c| {
            String::from_utf8_lossy(&c.after).into_owned()
        });
        let head = format!(
            "{input} => {} {} {calling} =>",
            self.trunk_name(id),
            String::from_utf8_lossy(&call.called.after)
        );
        match call.decision {
            Decision::NoRoute => format!("{head} 404 no route"),
            Decision::NoTrunk => format!("{head} 503 no usable trunk"),
            Decision::Reject { route } => format!(
                "{head} {} by reject route {}",
                self.table
                    .route_reject(route)
                    .map_or_else(String::new, reject_text),
                self.route_name(route)
            ),
            Decision::Route { .. } => {
                let attempts: Vec<String> =
                    call.attempts
                        .iter()
                        .map(|a| {
                            let calling = a.calling_sent.as_ref().map_or("-".to_string(), |c| {
                                String::from_utf8_lossy(c).into_owned()
                            });
                            format!(
                                "{}({},{})",
                                self.trunk_name(a.trunk),
                                String::from_utf8_lossy(&a.called_sent),
                                calling
                            )
                        })
                        .collect();
                format!("{head} {}", attempts.join(" "))
            }
        }
    }
}

/// RFC 3323's `anonymous`, which is no number.
fn is_anonymous(n: &[u8]) -> bool {
    n.eq_ignore_ascii_case(b"anonymous")
}

/// `--at`: an RFC 3339 time with a zone (`2026-12-24T20:00[Europe/Paris]`), an offset
/// (`2026-12-24T20:00+01:00`) or neither (taken as UTC), in seconds since the Unix epoch.
fn parse_at(text: &str) -> Result<i64, String> {
    if let Ok(z) = text.parse::<jiff::Zoned>() {
        return Ok(z.timestamp().as_second());
    }
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    match text.parse::<jiff::civil::DateTime>() {
        Ok(dt) => dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_second())
            .map_err(|e| format!("--at {text:?}: {e}")),
        Err(_) => Err(format!(
            "--at {text:?}: not a time; write 2026-12-24T20:00 (UTC), 2026-12-24T20:00+01:00 \
             or 2026-12-24T20:00[Europe/Paris]"
        )),
    }
}

/// A reject route's answer: `403 Forbidden`, or with its own reason phrase.
fn reject_text(r: &junction::routing::Reject) -> String {
    let phrase = r
        .reason
        .as_deref()
        .unwrap_or_else(|| junction::sip::response::reason_phrase(r.code));
    format!("{} {phrase}", r.code)
}

fn rules_of<'a>(t: &'a TrunkConfig, list: &str) -> &'a [RuleConfig] {
    match list {
        "inbound" => &t.inbound,
        "outbound_called" => &t.outbound_called,
        _ => &t.outbound_calling,
    }
}
