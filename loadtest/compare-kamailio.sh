#!/usr/bin/env bash
# junction and Kamailio side by side on the same core budget: the same basic-call load from
# junction-load through each proxy in turn (junction with CORES shards, Kamailio with CORES
# UDP workers, both stateful with Record-Route), then one table: calls, failures, latency,
# and the proxy's CPU time per call.
#
#   loadtest/compare-kamailio.sh                          # 100000 calls at 2000/s each
#   CALLS=20000 RATE=1000 loadtest/compare-kamailio.sh
source "$(dirname "$0")/lib.sh"
CALLS=${CALLS:-100000}
RATE=${RATE:-2000}
HOLD_MS=${HOLD_MS:-0}
CORES=${CORES:-2}
J_PORT=${J_PORT:-5060}
K_PORT=${K_PORT:-5080}
UAS_PORT=${UAS_PORT:-5070}
METRICS=${METRICS:-9091}
LIMIT=$(( CALLS / RATE + HOLD_MS / 1000 + 90 ))

need jq jq
need kamailio kamailio
build

# one_run NAME PORT PROXY_PID: UAS up, UAC through PORT; writes $WORK/NAME.json and .cpu
one_run() {
  local name=$1 port=$2 proxy=$3 rc=0
  start "uas for $name" "$WORK/$name-uas.out" "$JL" uas --listen "127.0.0.1:$UAS_PORT" --quiet
  local uas=$LAST_PID
  wait_udp_port "$UAS_PORT" 10
  local before; before=$(tree_cpu "$proxy")
  timeout "$LIMIT" "$JL" uac --target "127.0.0.1:$port" --rate "$RATE" --calls "$CALLS" \
    --hold-ms "$HOLD_MS" --quiet --json "$WORK/$name.json" || rc=$?
  local after; after=$(tree_cpu "$proxy")
  awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", a - b}' >"$WORK/$name.cpu"
  stop "$uas"
  echo "$name: junction-load exit $rc" >&2
}

# junction
junction_config "$WORK/junction.toml" "$J_PORT" "$METRICS" "$CORES" \
  '[[trunk]]' 'name = "uas"' "peers = [\"127.0.0.1:$UAS_PORT\"]" "send_to = \"127.0.0.1:$UAS_PORT\"" \
  '[[route]]' 'name = "all"' 'prefixes = [""]' 'trunks = ["uas"]'
start junction "$WORK/junction.log" "$JUNCTION" --config "$WORK/junction.toml"
J=$LAST_PID
wait_http_ready "$METRICS" 20
one_run junction "$J_PORT" "$J"
stop "$J"

# Kamailio: same budget (CORES UDP workers).
kamailio_command "$K_PORT" "$UAS_PORT" "$CORES"
start kamailio "$WORK/kamailio.log" "${KAMAILIO[@]}"
K=$LAST_PID
wait_udp_port "$K_PORT" 20
one_run kamailio "$K_PORT" "$K"
stop "$K"

row() {
  local name=$1 j="$WORK/$1.json" cpu
  cpu=$(cat "$WORK/$name.cpu")
  printf '| %-9s | %7s | %7s | %6s | %8s | %8s | %8s | %7s | %9s |\n' "$name" \
    "$(jq '.uac.calls.started' "$j")" "$(jq '.uac.calls.succeeded' "$j")" "$(jq '.failure_total' "$j")" \
    "$(jq '.uac.latency_us.invite_to_200.p50 / 1000' "$j")" \
    "$(jq '.uac.latency_us.invite_to_200.p99 / 1000' "$j")" \
    "$(jq '.uac.latency_us.bye_to_200.p99 / 1000' "$j")" "$cpu" \
    "$(awk -v c="$cpu" -v n="$(jq '.uac.calls.started' "$j")" 'BEGIN {printf "%.1f", c * 1e6 / n}')"
}
echo
echo "$CALLS basic calls at $RATE calls/s, hold ${HOLD_MS} ms, $CORES cores for the proxy:"
echo "| proxy     |   calls |      ok | failed | 200 p50  | 200 p99  | BYE p99  | CPU s   | us/call   |"
echo "|-----------|---------|---------|--------|----------|----------|----------|---------|-----------|"
row junction
row kamailio
echo "(latencies in ms, from the intended send time; CPU is the proxy's, all its threads/processes)"
