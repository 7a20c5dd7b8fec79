#!/usr/bin/env bash
# CPU time junction spends per basic call (INVITE/100/180/200/ACK/BYE/200 with Record-Route),
# with a real SIPp UAC and UAS on loopback.
#
#   benches/cpu_per_call.sh [rate] [calls] [transport] [cores]
#   defaults: 1000 calls/s, 20000 calls, un (many source ports), 2 shards
#
# Prints junction's process CPU time (utime + stime from /proc/PID/stat) over the run divided
# by completed calls, its peak RSS, and SIPp's own result line. Needs sipp (sip-tester) and a
# release build (it builds one). Everything it starts is stopped on exit; loopback only.
set -euo pipefail
rate=${1:-1000}
calls=${2:-20000}
transport=${3:-un}
cores=${4:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
scen="$here/tests/data/sipp"
[ -f "$scen/uac-rr.xml" ] || { echo "$scen/uac-rr.xml not found" >&2; exit 2; }
command -v sipp >/dev/null || { echo "install sipp: apt-get install -y sip-tester" >&2; exit 2; }

cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bin junction
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

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
EOF

"$here/target/release/junction" --config "$work/junction.toml" >"$work/junction.log" 2>&1 &
jpid=$!
pids+=("$jpid")
for _ in $(seq 100); do
	curl -sf http://127.0.0.1:29090/ready >/dev/null 2>&1 && break
	sleep 0.1
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

sipp -sf "$scen/uas-rr.xml" -i 127.0.0.1 -p 25070 -m "$calls" -nostdin -timeout 600s \
	>"$work/uas.log" 2>&1 &
pids+=("$!")
sleep 0.3
before=$(ticks "$jpid")
start=$(date +%s.%N)
sipp 127.0.0.1:25060 -sf "$scen/uac-rr.xml" -s 2125551234 -i 127.0.0.1 -p 25061 \
	-t "$transport" -max_socket 5000 -d 0 -r "$rate" -m "$calls" -nostdin -timeout 600s \
	-trace_stat -stf "$work/uac.csv" >"$work/uac.log" 2>&1 || true
end=$(date +%s.%N)
after=$(ticks "$jpid")
ok=$(grep -E "Successful call" "$work/uac.log" | tail -1 | awk -F'|' '{print $3}' | tr -d ' ')
failed=$(grep -E "Failed call" "$work/uac.log" | tail -1 | awk -F'|' '{print $3}' | tr -d ' ')
rss=$(awk '/VmHWM/ {print $2}' "/proc/$jpid/status")
awk -v b="$before" -v a="$after" -v hz="$hz" -v ok="${ok:-0}" -v f="${failed:-0}" \
	-v s="$start" -v e="$end" -v rss="$rss" -v r="$rate" -v t="$transport" -v c="$cores" 'BEGIN {
	cpu = (a - b) / hz
	printf "junction %s shards, %s calls/s offered, -t %s: %d calls ok, %d failed in %.1f s\n", c, r, t, ok, f, e - s
	if (ok > 0) printf "junction CPU: %.2f s total, %.1f us per call; peak RSS %.1f MB\n", cpu, cpu * 1e6 / ok, rss / 1024
}'
