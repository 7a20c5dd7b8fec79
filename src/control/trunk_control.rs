//! Runtime trunk control on the management port:
//!
//! - `GET /trunks`: every trunk of the running configuration as JSON: health (up, why it is
//!   down, failures in a row), whether an operator disabled it, its limits and what it
//!   carries now (calls, early dialogs, calls it sent us);
//! - `GET /trunks/NAME`: one of them;
//! - `POST /trunks/NAME/disable`, `POST /trunks/NAME/enable`: take it out of service and
//!   back. New calls skip a disabled trunk (as a down one); calls up continue. The flag is
//!   kept in the trunk's shared state, by name, so it survives a reload (not a restart).
//!
//! One function from (method, path) to (status, content type, body), so whichever HTTP
//! server serves the port only has to call it (`TrunkControl::handle`).

use crate::routing::RoutingTable;
use crate::trunks::TrunkState;
use serde_json::{json, Value};
use std::sync::Arc;

/// The running routing table and its trunk states (the reloader's current ones).
pub type Current = Arc<dyn Fn() -> (Arc<RoutingTable>, Arc<[Arc<TrunkState>]>) + Send + Sync>;

/// The HTTP answer: status, content type, body.
pub type Answer = (u16, &'static str, String);

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// Serves `/trunks` from the running configuration.
#[derive(Clone)]
pub struct TrunkControl {
    current: Current,
}

impl TrunkControl {
    pub fn new(current: Current) -> TrunkControl {
        TrunkControl { current }
    }

    /// The management HTTP endpoint for `/trunks` paths (`Handlers::endpoints`).
    pub fn endpoint(self) -> super::http::Endpoint {
        Arc::new(move |request: &super::http::Request| {
            self.handle(request.method, request.path)
                .map(|(status, content_type, body)| super::http::Response {
                    status,
                    content_type,
                    body,
                    headers: Vec::new(),
                })
        })
    }

    /// Answer `method` on `path` (without the query), or `None` when the path is not
    /// under `/trunks`.
    pub fn handle(&self, method: &str, path: &str) -> Option<Answer> {
        let rest = path.strip_prefix("/trunks")?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        let (table, states) = (self.current)();
        let find = |name: &str| {
            table
                .trunk_id(name)
                .and_then(|id| Some((id, states.get(id.0 as usize)?)))
        };
        let not_found = |name: &str| {
            (
                404,
                TEXT,
                format!("no trunk named {name:?} in the running configuration\n"),
            )
        };
        Some(match (method, parts.as_slice()) {
            ("GET" | "HEAD", []) => {
                let list: Vec<Value> = table
                    .trunks
                    .iter()
                    .zip(states.iter())
                    .map(|(t, s)| describe(t, s))
                    .collect();
                (200, JSON, pretty(&json!({ "trunks": list })))
            }
            ("GET" | "HEAD", [name]) => match find(name) {
                Some((id, s)) => match table.trunk(id) {
                    Some(t) => (200, JSON, pretty(&describe(t, s))),
                    None => not_found(name),
                },
                None => not_found(name),
            },
            ("POST", [name, action @ ("disable" | "enable")]) => match find(name) {
                Some((id, s)) => {
                    let disable = *action == "disable";
                    if s.set_disabled(disable) {
                        if disable {
                            crate::log_warn!("trunk disabled", trunk = name, by = "operator");
                        } else {
                            crate::log_info!("trunk enabled", trunk = name, by = "operator");
                        }
                    }
                    match table.trunk(id) {
                        Some(t) => (200, JSON, pretty(&describe(t, s))),
                        None => not_found(name),
                    }
                }
                None => not_found(name),
            },
            (_, [_, "disable" | "enable"]) => (
                405,
                TEXT,
                "method not allowed: POST /trunks/NAME/disable or /enable\n".into(),
            ),
            (_, [] | [_]) => (405, TEXT, "method not allowed: GET\n".into()),
            _ => (
                404,
                TEXT,
                "not found: GET /trunks, GET /trunks/NAME, POST /trunks/NAME/disable|enable\n"
                    .into(),
            ),
        })
    }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// One trunk as JSON.
fn describe(t: &crate::routing::Trunk, s: &TrunkState) -> Value {
    let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs());
    json!({
        "name": t.name,
        "send_to": t.send_to.map(|a| a.to_string()),
        "usable": s.usable(),
        "up": s.is_up(),
        "disabled": s.disabled(),
        "down_cause": if s.is_up() { Value::Null } else { json!(s.down_cause().as_str()) },
        "failures_in_a_row": s.failures_in_a_row(),
        "calls_active": s.calls(),
        "early_dialogs": s.early(),
        "calls_in_active": s.calls_in(),
        "overload_reduction_percent": s.oc_reduction(std::time::Instant::now()),
        "limits": {
            "max_calls": t.max_calls,
            "max_cps": t.max_cps,
            "max_early": t.max_early,
            "max_calls_in": t.max_calls_in,
            "max_cps_in": t.max_cps_in,
            "down_after_failures": t.down_after_failures,
            "max_duration_s": secs(t.max_duration),
        },
        "probe": t.probe.map(|p| json!({
            "interval_s": p.interval.as_secs(),
            "down_after": p.down_after,
            "up_after": p.up_after,
        })),
    })
}
