#!/usr/bin/env bash
# Overload ramp through junction on loopback: the offered rate starts at START calls/s and
# grows by STEP every PERIOD_MS up to MAX, for DURATION seconds, with a concurrent-call cap so
# that a saturated proxy cannot grow the load generator without bound. The live line each
# second shows where latency and failures begin to climb; the summary and the JSON keep them.
# Exits 0 when the run completed (failures are the point of an overload test); set
# MAX_FAILURES (a count or a percentage) to gate on them.
#
# At the end it prints the curve (per second: offered calls/s, completed calls/s, failed)
# and the goodput figure of issue 6: the peak completed calls/s, and the lowest completed
# calls/s of any later second while calls were still offered (the ratio should stay >= 90%).
#
#   loadtest/overload.sh                                   # 1000 -> 20000 calls/s over 40 s
#   START=2000 STEP=2000 PERIOD_MS=5000 MAX=30000 DURATION=60 loadtest/overload.sh
#   # junction alone on CPU 0, the load generator on CPU 1:
#   CORES=1 JUNCTION_CPUS=0 LOAD_CPUS=1 START=2000 STEP=2000 PERIOD_MS=3000 MAX=30000 \
#     DURATION=45 loadtest/overload.sh
source "$(dirname "$0")/lib.sh"
START=${START:-1000}
STEP=${STEP:-1000}
PERIOD_MS=${PERIOD_MS:-2000}
MAX=${MAX:-20000}
DURATION=${DURATION:-40}
CONCURRENT=${CONCURRENT:-20000}
MAX_FAILURES=${MAX_FAILURES:-100%}
PORT=${PORT:-5060}
UAS_PORT=${UAS_PORT:-5070}
METRICS=${METRICS:-9091}
CORES=${CORES:-2}
JUNCTION_CPUS=${JUNCTION_CPUS:-}
LOAD_CPUS=${LOAD_CPUS:-}
LIMIT=$(( DURATION + 120 ))
LOAD_PIN=()
[ -n "$LOAD_CPUS" ] && LOAD_PIN=(--cpus "$LOAD_CPUS")

build
junction_config "$WORK/junction.toml" "$PORT" "$METRICS" "$CORES" \
  '[[trunk]]' 'name = "uas"' "peers = [\"127.0.0.1:$UAS_PORT\"]" "send_to = \"127.0.0.1:$UAS_PORT\"" \
  '[[route]]' 'name = "all"' 'prefixes = [""]' 'trunks = ["uas"]'
if [ -n "$JUNCTION_CPUS" ]; then
  sed -i "s/^cores = .*/&\ncpus = [$JUNCTION_CPUS]/" "$WORK/junction.toml"
fi
start junction "$WORK/junction.log" "$JUNCTION" --config "$WORK/junction.toml"
J=$LAST_PID
wait_http_ready "$METRICS" 20
start uas "$WORK/uas.out" "$JL" uas --listen "127.0.0.1:$UAS_PORT" "${LOAD_PIN[@]}" --quiet
UAS=$LAST_PID
wait_udp_port "$UAS_PORT" 10

rc=0
timeout "$LIMIT" "$JL" uac --target "127.0.0.1:$PORT" --rate "$START" --rate-step "$STEP" \
  --rate-period-ms "$PERIOD_MS" --rate-max "$MAX" --duration "$DURATION" \
  --concurrent "$CONCURRENT" --t1-ms 500 --max-failures "$MAX_FAILURES" \
  "${LOAD_PIN[@]}" --json "$WORK/uac.json" --csv "$WORK/uac.csv" || rc=$?
echo "--- junction: $(proc_cpu "$J") s CPU"
echo "--- curve: second, offered calls/s, completed calls/s, failed calls/s"
awk -F';' 'NR > 1 {printf "%6.0f %8.0f %8d %8d\n", $1, $2, $6, $8}' "$WORK/uac.csv"
awk -F';' 'NR > 1 && $2 > 0 {
    ok[n] = $6; n++; if ($6 > peak) {peak = $6; at = n - 1}
  }
  END {
    low = peak; for (i = at; i < n; i++) if (ok[i] < low) low = ok[i]
    if (peak > 0) printf "--- goodput: peak %d completed calls/s; lowest after the peak %d (%.1f%% of the peak)\n", peak, low, 100 * low / peak
  }' "$WORK/uac.csv"
stop "$UAS"
echo "--- UAS"
cat "$WORK/uas.out"
exit $rc
