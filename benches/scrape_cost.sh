#!/usr/bin/env bash
# What scraping costs the shards: residence time (datagram received -> message sent) under a
# SIPp load, with and without a scraper fetching /metrics and /metrics/latency.json.
#
#   benches/scrape_cost.sh [rate] [calls] [scrape_ms] [rounds] [cores]
#   defaults: 500 calls/s, 15000 calls, scrape every 100 ms, 2 rounds, 2 shards
#
# With as many shards as CPUs the metrics thread shares a CPU with a shard; with fewer it
# runs on a CPU of its own (as in production), and only the shared memory is measured.
#
# Each round runs junction twice (fresh process, CDRs on): once without scraping,
# once with a scraper (one persistent python3 process, no fork per scrape) fetching both
# endpoints every scrape_ms. Prints, per run, the residence p50/p99/p99.9 of INVITE, 1xx, 2xx
# and BYE from junction's own /metrics/latency.json (read once, after the load), junction's
# CPU per call, and the scraper's mean/max scrape time. Needs sipp (sip-tester), curl and
# python3; builds a release binary. Loopback only; everything started is stopped on exit.
set -euo pipefail
rate=${1:-500}
calls=${2:-15000}
scrape_ms=${3:-100}
rounds=${4:-2}
cores=${5:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
scen="$here/tests/data/sipp"
[ -f "$scen/uac-rr.xml" ] || { echo "$scen/uac-rr.xml not found" >&2; exit 2; }
command -v sipp >/dev/null || { echo "install sipp: apt-get install -y sip-tester" >&2; exit 2; }

cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bin junction
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
base=http://127.0.0.1:29090

cat >"$work/junction.toml" <<EOF
[server]
cores = $cores
listen = "udp:127.0.0.1:25060"
metrics = "127.0.0.1:29090"
[[trunk]]
name = "uas"
peers = ["127.0.0.1:25070"]
send_to = "127.0.0.1:25070"
[[trunk]]
name = "uac"
peers = ["127.0.0.1"]
[[route]]
name = "all"
prefixes = [""]
trunks = ["uas"]
[cdr]
path = "cdr.jsonl"
rotate_bytes = 104857600
[log]
level = "warn"
EOF

# The scraper: fetch both endpoints every $1 ms until killed; on SIGTERM print the mean and
# max time of a scrape (both requests) in ms.
cat >"$work/scraper.py" <<'EOF'
import http.client, signal, sys, time
interval = float(sys.argv[1]) / 1000.0
times = []
def done(*_):
    if times:
        print("scrapes %d, mean %.2f ms, max %.2f ms" % (len(times), 1000 * sum(times) / len(times), 1000 * max(times)))
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    start = time.monotonic()
    for path in ("/metrics", "/metrics/latency.json"):
        try:
            c = http.client.HTTPConnection("127.0.0.1", 29090, timeout=5)
            c.request("GET", path)
            c.getresponse().read()
            c.close()
        except OSError:
            pass
    times.append(time.monotonic() - start)
    time.sleep(max(0.0, interval - (time.monotonic() - start)))
EOF

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run() { # $1: scrape (0/1)
	(cd "$work" && exec "$here/target/release/junction" --config junction.toml >junction.log 2>&1) &
	local jpid=$!
	pids+=("$jpid")
	for _ in $(seq 100); do
		curl -sf "$base/ready" >/dev/null 2>&1 && break
		sleep 0.1
	done
	sipp -sf "$scen/uas-rr.xml" -i 127.0.0.1 -p 25070 -m "$calls" -nostdin -timeout 600s \
		>"$work/uas.log" 2>&1 &
	local upid=$!
	pids+=("$upid")
	local spid=""
	if [ "$1" = 1 ]; then
		python3 "$work/scraper.py" "$scrape_ms" >"$work/scraper.log" 2>&1 &
		spid=$!
		pids+=("$spid")
	fi
	sleep 0.3
	local before after
	before=$(ticks "$jpid")
	sipp 127.0.0.1:25060 -sf "$scen/uac-rr.xml" -s 2125551234 -i 127.0.0.1 -p 25061 \
		-t un -max_socket 5000 -d 0 -r "$rate" -m "$calls" -nostdin -timeout 600s \
		>"$work/uac.log" 2>&1 || true
	after=$(ticks "$jpid")
	local scraped="no scraping"
	if [ -n "$spid" ]; then
		kill -TERM "$spid" 2>/dev/null || true
		wait "$spid" 2>/dev/null || true
		scraped=$(cat "$work/scraper.log")
	fi
	sleep 0.3
	curl -sf "$base/metrics/latency.json" >"$work/latency.json"
	kill "$upid" 2>/dev/null || true
	kill -TERM "$jpid" 2>/dev/null || true
	wait "$jpid" 2>/dev/null || true
	rm -f "$work"/cdr.jsonl*
	local ok
	ok=$(grep -E "Successful call" "$work/uac.log" | tail -1 | awk -F'|' '{print $3}' | tr -d ' ')
	python3 - "$work/latency.json" "$ok" "$before" "$after" "$hz" "$scraped" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
ok, before, after, hz = int(sys.argv[2] or 0), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cpu = (after - before) / hz
print("  %s; %d calls ok; junction CPU %.1f us/call" % (sys.argv[6], ok, cpu * 1e6 / max(ok, 1)))
for kind in ("INVITE", "1xx", "2xx", "BYE"):
    s = doc["residence_seconds"].get(kind)
    if s:
        print("  residence %-6s n=%-6d p50 %6.0f us  p99 %6.0f us  p99.9 %6.0f us  max %7.0f us"
              % (kind, s["count"], 1e6 * s["p50"], 1e6 * s["p99"], 1e6 * s["p99_9"], 1e6 * s["max"]))
EOF
}

for round in $(seq "$rounds"); do
	echo "round $round: $cores shards, $rate calls/s, $calls calls, without scraping"
	run 0
	echo "round $round: $cores shards, $rate calls/s, $calls calls, scraping every $scrape_ms ms"
	run 1
done
