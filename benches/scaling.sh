#!/usr/bin/env bash
# Does a second shard pay for itself? junction with 1 shard, 2 shards, and 2 shards with
# per-shard ports (`[server] shard_ports`), each carrying basic calls (INVITE, 100, 180, 200,
# ACK, BYE, 200, Record-Route) between junction-load's UAC and UAS on loopback. The UAC
# follows the route set for ACK and BYE as a real user agent does (SIPp does not: it sends
# every request to its command-line target).
#
#   benches/scaling.sh                      # 1000 and 4000 calls/s, 15 s each, 3 rounds
#   RATES="1000" SECS=10 REPEAT=5 benches/scaling.sh
#   SAT_QUOTA=60 SAT_RATE=16000 benches/scaling.sh   # the saturation step's budget and load
#
# For each rate and mode it prints junction's CPU per completed call (all its threads, from
# /proc/PID/task/*/schedstat, over the UAC's run) and the UAC's p99 INVITE-to-200; then, at
# saturation (junction held to SAT_QUOTA% of one CPU by a cgroup quota, root only, offered
# SAT_RATE calls/s, more than that budget carries), the completed calls per CPU second.
# Each figure is the median of REPEAT rounds; the modes alternate inside a round, so a
# machine that drifts moves them alike. It also prints how many datagrams crossed shards per
# call and why (junction_handoff_kind_total). Loopback only; stops what it started.
set -euo pipefail
source "$(dirname "$0")/../loadtest/lib.sh"

RATES=${RATES:-"1000 4000"}
SECS=${SECS:-15}
REPEAT=${REPEAT:-3}
SAT_QUOTA=${SAT_QUOTA:-50}
SAT_RATE=${SAT_RATE:-14000}
SAT_SECS=${SAT_SECS:-10}
MODES=${MODES:-"1-shard 2-shards 2-shards+ports"}
PORT=${PORT:-26060}
UAS_PORT=$((PORT + 10))
METRICS=$((PORT + 20))
SHARD_PORTS=$((PORT + 30))

build

# cpu_ns PID: CPU time of every thread of a live process, in nanoseconds.
cpu_ns() {
  local ns=0 run t
  for t in /proc/"$1"/task/*/schedstat; do
    read -r run _ <"$t" 2>/dev/null && ns=$((ns + run))
  done
  echo "$ns"
}

# metric NAME: the sum of a metric's samples (every label set) from junction's /metrics.
metric_sum() {
  curl -s "http://127.0.0.1:$METRICS/metrics" | awk -v n="$1" \
    'index($0, n"{") == 1 || $1 == n { s += $NF } END { printf "%d", s }'
}

# kind_sum KIND: crossings of one kind.
kind_sum() {
  curl -s "http://127.0.0.1:$METRICS/metrics" | awk -v k="kind=\"$1\"" \
    'index($0, "junction_handoff_kind_total{") == 1 && index($0, k) { s += $NF } END { printf "%d", s }'
}

# run MODE RATE CALLS QUOTA: one run; prints "cpu_us_per_call p99_ms completed crossings_per_call
# calls_per_cpu_s" on stdout.
run() {
  local mode=$1 rate=$2 calls=$3 quota=$4 cores=2 extra=""
  case $mode in
    1-shard) cores=1 ;;
    2-shards) ;;
    2-shards+ports) extra="shard_ports = $SHARD_PORTS" ;;
  esac
  local cfg=$WORK/$mode.toml
  cat >"$cfg" <<EOF
[server]
cores = $cores
listen = "udp:127.0.0.1:$PORT"
metrics = "127.0.0.1:$METRICS"
$extra

[[trunk]]
name = "uas"
peers = ["127.0.0.1:$UAS_PORT"]
send_to = "127.0.0.1:$UAS_PORT"

[[trunk]]
name = "loadgen"
peers = ["127.0.0.1"]

[[route]]
name = "all"
prefixes = [""]
trunks = ["uas"]
EOF
  start junction "$WORK/junction-$mode.log" "$JUNCTION" --config "$cfg"
  local jpid=$LAST_PID
  wait_http_ready "$METRICS" 20
  [ "$quota" -gt 0 ] && cpu_quota "$jpid" "$quota"
  start uas "$WORK/uas.log" "$JL" uas --listen "127.0.0.1:$UAS_PORT" --quiet
  local uas=$LAST_PID
  wait_udp_port "$UAS_PORT" 10
  local c0 c1
  c0=$(cpu_ns "$jpid")
  "$JL" uac --target "127.0.0.1:$PORT" --number 2125551234 --rate "$rate" --calls "$calls" \
    --concurrent $((rate * 4)) --quiet >"$WORK/uac.log" 2>&1 || true
  c1=$(cpu_ns "$jpid")
  sleep 0.5
  local crossed completed
  crossed=$(metric_sum junction_handoff_out_total)
  completed=$(awk '/^UAC:/ { for (i = 1; i <= NF; i++) if ($(i+1) == "succeeded,") print $i }' "$WORK/uac.log")
  completed=${completed:-0}
  local kinds=""
  if [ "$cores" -gt 1 ]; then
    for k in response invite ack cancel other_request; do
      kinds="$kinds $k=$(kind_sum "$k")"
    done
  fi
  stop "$uas"
  stop "$jpid"
  [ -n "${CPU_CGROUP:-}" ] && { rmdir "$CPU_CGROUP" 2>/dev/null || true; CPU_CGROUP=; }
  local p99
  p99=$(awk '$1 == "invite_to_200" { for (i = 1; i <= NF; i++) if ($i == "p99") print $(i+1) }' "$WORK/uac.log")
  awk -v c=$((c1 - c0)) -v n="$completed" -v p="${p99:-nan}" -v x="$crossed" -v k="$kinds" \
    'BEGIN { if (n == 0) n = 1; printf "%.1f %s %d %.2f %.0f%s\n", c / 1000 / n, p, n, x / n, n / (c / 1e9), k }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A CPU P99 XING CPS KINDS
for round in $(seq 1 "$REPEAT"); do
  for rate in $RATES; do
    for mode in $MODES; do
      read -r cpu p99 n x _ kinds < <(run "$mode" "$rate" $((rate * SECS)) 0)
      echo "round $round  $rate calls/s  $mode: $cpu us/call  p99 $p99 ms  $n calls  $x crossings/call  $kinds" >&2
      CPU[$rate,$mode]+="$cpu "
      P99[$rate,$mode]+="$p99 "
      XING[$rate,$mode]+="$x "
      KINDS[$rate,$mode]=$kinds
    done
  done
  if [ "$(id -u)" = 0 ] && [ "$SAT_QUOTA" -gt 0 ]; then
    for mode in $MODES; do
      read -r _ _ n _ cps _ < <(run "$mode" "$SAT_RATE" $((SAT_RATE * SAT_SECS)) "$SAT_QUOTA")
      echo "round $round  saturation at $SAT_QUOTA% of a CPU, $SAT_RATE offered  $mode: $n calls  $cps calls per CPU second" >&2
      CPS[$mode]+="$cps "
    done
  fi
done

echo
echo "junction CPU per call and p99 INVITE-to-200 (median of $REPEAT rounds of ${SECS}s; junction-load both ends, loopback)"
printf '%-8s | %-16s | %12s | %10s | %12s | %s\n' "calls/s" mode "CPU us/call" "x 1 shard" "p99 ms" "crossings/call"
for rate in $RATES; do
  base=$(echo "${CPU[$rate,1-shard]:-}" | tr ' ' '\n' | grep . | median || true)
  for mode in $MODES; do
    c=$(echo "${CPU[$rate,$mode]}" | tr ' ' '\n' | grep . | median)
    p=$(echo "${P99[$rate,$mode]}" | tr ' ' '\n' | grep . | median)
    x=$(echo "${XING[$rate,$mode]}" | tr ' ' '\n' | grep . | median)
    ratio=$(awk -v a="$c" -v b="${base:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    printf '%-8s | %-16s | %12s | %10s | %12s | %s %s\n' "$rate" "$mode" "$c" "$ratio" "$p" "$x" "${KINDS[$rate,$mode]:-}"
  done
done
if [ -n "${CPS[1-shard]:-}" ]; then
  echo
  echo "saturation: junction held to $SAT_QUOTA% of one CPU, $SAT_RATE calls/s offered for ${SAT_SECS}s"
  base=$(echo "${CPS[1-shard]}" | tr ' ' '\n' | grep . | median)
  for mode in $MODES; do
    c=$(echo "${CPS[$mode]}" | tr ' ' '\n' | grep . | median)
    printf '%-16s | %8s completed calls per CPU second | %s x 1 shard\n' "$mode" "$c" \
      "$(awk -v a="$c" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
  done
fi
