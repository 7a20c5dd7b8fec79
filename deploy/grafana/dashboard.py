#!/usr/bin/env python3
"""Writes junction-dashboard.json (the Grafana dashboard) next to this file: edit the panels
here, run `python3 deploy/grafana/dashboard.py`, commit both. tests/operator_files.rs checks
every query of the JSON against junction's /metrics."""
import json
import os
def sel(extra=""):
    return '{instance=~"$instance"%s}' % ((", " + extra) if extra else "")
T = 'trunk=~"$trunk"'
DIN = 'direction="in"'
DOUT = 'direction="out"'
TOUT = T + ', direction="out"'
panels = []
y = 0
pid = 0
def row(title):
    global y, pid
    pid += 1
    panels.append({"type": "row", "title": title, "id": pid, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    y += 1
def ts(title, targets, unit="short", w=12, x=0, desc="", h=8, max_=None, stack=False):
    global pid
    pid += 1
    p = {"type": "timeseries", "title": title, "id": pid, "description": desc,
         "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "gridPos": {"h": h, "w": w, "x": x, "y": y},
         "fieldConfig": {"defaults": {"unit": unit, "custom": {"fillOpacity": 10, "stacking": {"mode": "normal" if stack else "none"}}}, "overrides": []},
         "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]}, "tooltip": {"mode": "multi"}},
         "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": l, "datasource": {"type": "prometheus", "uid": "${datasource}"}} for i, (e, l) in enumerate(targets)]}
    if max_ is not None:
        p["fieldConfig"]["defaults"]["max"] = max_
        p["fieldConfig"]["defaults"]["min"] = 0
    panels.append(p)
def stat(title, expr, unit="short", w=4, x=0, desc="", thresholds=None, mappings=None, legend=""):
    global pid
    pid += 1
    p = {"type": "stat", "title": title, "id": pid, "description": desc,
         "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "gridPos": {"h": 4, "w": w, "x": x, "y": y},
         "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": thresholds or [{"color": "green", "value": None}]}, "mappings": mappings or []}, "overrides": []},
         "options": {"colorMode": "background", "graphMode": "area", "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
         "targets": [{"refId": "A", "expr": expr, "legendFormat": legend, "datasource": {"type": "prometheus", "uid": "${datasource}"}}]}
    panels.append(p)

row("Overview")
stat("Calls/s in", f'sum(rate(junction_trunk_calls_total{sel(DIN)}[$__rate_interval]))', "reqps", x=0,
     desc="New calls received from every trunk per second.")
stat("ASR (5 min)", f'sum(rate(junction_trunk_answered_total{sel()}[5m])) / clamp_min(sum(rate(junction_trunk_calls_total{sel(DOUT)}[5m])), 1e-9)', "percentunit", x=4,
     desc="Answer-seizure ratio: attempts answered (2xx) / attempts sent, all trunks.",
     thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 0.3}, {"color": "green", "value": 0.5}])
stat("Active calls", f'sum(junction_calls_active{sel()})', x=8, desc="Calls in progress (every shard).")
stat("Trunks down", f'count(junction_trunk_up{sel()} == 0) or vector(0)', x=12,
     desc="Trunks whose OPTIONS probes fail.",
     thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}])
stat("Admitted (overload control)", f'min(junction_admission_ratio{sel()})', "percentunit", x=16,
     desc="Share of new calls overload control admits, lowest shard (1: not overloaded).",
     thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 0.9}, {"color": "green", "value": 0.999}])
stat("Shards up", f'sum(junction_shard_up{sel()}) / sum(junction_shards{sel()})', "percentunit", x=20,
     thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}])
y += 4

row("Traffic per trunk")
ts("Calls/s per trunk and direction",
   [(f'sum by (trunk, direction) (rate(junction_trunk_calls_total{sel(T)}[$__rate_interval]))', "{{trunk}} {{direction}}")],
   "reqps", x=0, desc="direction=in: calls received from the trunk; out: INVITE attempts sent to it.")
ts("ASR per trunk",
   [(f'sum by (trunk) (rate(junction_trunk_answered_total{sel(T)}[5m])) / clamp_min(sum by (trunk) (rate(junction_trunk_calls_total{sel(TOUT)}[5m])), 1e-9)', "{{trunk}}")],
   "percentunit", x=12, max_=1, desc="Attempts the trunk answered (2xx) / attempts sent to it, over 5 minutes.")
y += 8
ts("Failed attempts/s per trunk, by class",
   [(f'sum by (trunk, class) (rate(junction_trunk_failed_total{sel(T)}[$__rate_interval]))', "{{trunk}} {{class}}")],
   "reqps", x=0, desc="Final responses 4xx/5xx/6xx, or timeout (no answer in time).")
ts("Active calls and early dialogs per trunk",
   [(f'sum by (trunk) (junction_trunk_calls_active{sel(T)})', "{{trunk}} active"),
    (f'sum by (trunk) (junction_trunk_early_dialogs{sel(T)})', "{{trunk}} early")],
   "short", x=12)
y += 8

row("Latency per trunk")
for i, (name, title, desc) in enumerate([
        ("junction_trunk_pdd_seconds", "Post-dial delay per trunk (p50, p95, p99)", "INVITE sent to the trunk to its first 18x or final answer."),
        ("junction_trunk_answer_seconds", "Answer time per trunk (p50, p95, p99)", "INVITE sent to the trunk to its 2xx.")]):
    ts(title,
       [(f'histogram_quantile({q}, sum by (trunk, le) (rate({name}_bucket{sel(T)}[5m])))', "{{trunk}} p%s" % int(q * 100)) for q in (0.5, 0.95, 0.99)],
       "s", x=12 * i, desc=desc)
y += 8
ts("OPTIONS round trip per trunk (p95)",
   [(f'histogram_quantile(0.95, sum by (trunk, le) (rate(junction_trunk_options_rtt_seconds_bucket{sel(T)}[5m])))', "{{trunk}}")],
   "s", x=0)
ts("Mean call duration per trunk",
   [(f'sum by (trunk) (rate(junction_trunk_call_duration_seconds_sum{sel(T)}[15m])) / clamp_min(sum by (trunk) (rate(junction_trunk_call_duration_seconds_count{sel(T)}[15m])), 1e-9)', "{{trunk}}")],
   "s", x=12)
y += 8

row("Trunk health and admission")
ts("Trunk up", [(f'min by (trunk) (junction_trunk_up{sel(T)})', "{{trunk}}")], "bool_yes_no", x=0, max_=1,
   desc="1 while the trunk is usable (its OPTIONS probes succeed, or it is not probed).")
ts("Admission refusals/s per trunk, by limit",
   [(f'sum by (trunk, limit) (rate(junction_trunk_admission_refused_total{sel(T)}[$__rate_interval]))', "{{trunk}} {{limit}}")],
   "reqps", x=12, desc="Calls a trunk's limits refused (max_calls, max_cps, max_early) or withheld because the trunk asked (overload_control).")
y += 8
ts("Overload reduction asked by trunks (RFC 7339)",
   [(f'max by (trunk) (junction_trunk_overload_reduction_ratio{sel(T)})', "{{trunk}}")], "percentunit", x=0)
ts("Failovers/s per trunk",
   [(f'sum by (trunk) (rate(junction_trunk_failovers_total{sel(T)}[$__rate_interval]))', "{{trunk}}")], "reqps", x=12)
y += 8

row("Shedding and drops")
ts("Shedding: new calls refused or dropped by overload control",
   [(f'sum(rate(junction_core_rejected_overload_total{sel()}[$__rate_interval]))', "answered 503"),
    (f'sum(rate(junction_core_dropped_overload_total{sel()}[$__rate_interval]))', "dropped unparsed"),
    (f'sum(rate(junction_core_rejected_admission_total{sel()}[$__rate_interval]))', "trunk admission")],
   "reqps", x=0)
ts("Admitted share per shard; memory pressure",
   [(f'junction_admission_ratio{sel()}', "shard {{shard}} admitted"),
    (f'max(junction_memory_pressure{sel()})', "memory pressure")],
   "percentunit", x=12, max_=1)
y += 8
ts("Datagrams dropped/s",
   [(f'sum by (reason) (rate(junction_datagrams_dropped_total{sel()}[$__rate_interval]))', "shell: {{reason}}"),
    (f'sum(rate(junction_socket_drops_total{sel()}[$__rate_interval]))', "kernel: socket drops"),
    (f'max(rate(junction_udp_receive_buffer_errors_total{sel()}[$__rate_interval]))', "kernel: UDP receive buffer errors (host)")],
   "pps", x=0)
ts("CDRs",
   [(f'sum(rate(junction_cdr_records_written_total{sel()}[$__rate_interval]))', "written/s"),
    (f'sum(rate(junction_cdr_dropped_total{sel()}[$__rate_interval]))', "dropped/s"),
    (f'sum(rate(junction_cdr_write_errors_total{sel()}[$__rate_interval]))', "write errors/s")],
   "reqps", x=12)
y += 8

row("Residence time and shards")
ts("Residence time by kind (p50, p99)",
   [(f'histogram_quantile({q}, sum by (kind, le) (rate(junction_residence_seconds_bucket{sel()}[5m])))', "{{kind}} p%s" % int(q * 100)) for q in (0.5, 0.99)],
   "s", x=0, desc="From receiving a datagram to sending a message it caused, by the kind of the message sent.")
ts("Datagrams/s per shard",
   [(f'sum by (shard) (rate(junction_datagrams_received_total{sel()}[$__rate_interval]))', "shard {{shard}} received"),
    (f'sum by (shard) (junction_handoff_queue_datagrams{sel(DIN)})', "queued for shard {{shard}} (hand-off)")],
   "pps", x=12)
y += 8
ts("Memory", [(f'sum(junction_memory_resident_bytes{sel()})', "resident"), (f'sum(junction_memory_cap_bytes{sel()})', "cap")], "bytes", x=0)
ts("Configuration reloads",
   [(f'sum(increase(junction_config_reloads_total{sel()}[$__rate_interval]))', "applied (shard reloads)"),
    (f'sum(increase(junction_config_reload_failures_total{sel()}[$__rate_interval]))', "refused")],
   "short", x=12)
y += 8

dash = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}],
    "title": "junction", "uid": "junction-sip", "tags": ["junction", "sip"],
    "description": "junction SIP inter-trunk router: calls, ASR, PDD and answer time per trunk, trunk health, admission, shedding, drops, residence time. Every metric named here is checked against junction's /metrics by tests/operator_files.rs.",
    "editable": True, "schemaVersion": 39, "version": 1, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
    "timezone": "utc", "graphTooltip": 1,
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source", "current": {}},
        {"name": "instance", "type": "query", "label": "Instance", "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": {"query": "label_values(junction_build_info, instance)", "refId": "instance"}, "definition": "label_values(junction_build_info, instance)",
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "current": {}},
        {"name": "trunk", "type": "query", "label": "Trunk", "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": {"query": "label_values(junction_trunk_up{instance=~\"$instance\"}, trunk)", "refId": "trunk"}, "definition": "label_values(junction_trunk_up{instance=~\"$instance\"}, trunk)",
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "current": {}}]},
    "annotations": {"list": []},
    "panels": panels,
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "junction-dashboard.json")
with open(out, "w") as f:
    json.dump(dash, f, indent=2)
    f.write("\n")
print(f"{out}: {len(panels)} panels")
