#!/usr/bin/env bash
# Overload ramp through junction on loopback: the offered rate starts at START calls/s and
# grows by STEP every PERIOD_MS up to MAX, for DURATION seconds, with a concurrent-call cap so
# that a saturated proxy cannot grow the load generator without bound. The live line each
# second shows where latency and failures begin to climb; the summary and the JSON keep them.
# Exits 0 when the run completed (failures are the point of an overload test); set
# MAX_FAILURES (a count or a percentage) to gate on them.
#
# OC=1 runs the UAC with --oc: it then behaves as an RFC 7339 overload-control client, and
# junction's Via oc value makes it withhold that share of new calls (counted as throttled);
# without it the UAC is a plain trunk that only sees 503s.
#
# At the end it prints the curve (per second: offered calls/s, completed calls/s, failed,
# throttled) and the goodput figure of issue 6: the peak completed calls/s, and the lowest
# completed calls/s of any step that offered more than that peak, before or after it (the
# ratio should stay >= 90%).
#
#   loadtest/overload.sh                                   # 1000 -> 20000 calls/s over 40 s
#   START=2000 STEP=2000 PERIOD_MS=5000 MAX=30000 DURATION=60 loadtest/overload.sh
#   # junction alone on CPU 0, the load generator on CPU 1:
#   CORES=1 JUNCTION_CPUS=0 LOAD_CPUS=1 START=2000 STEP=2000 PERIOD_MS=3000 MAX=30000 \
#     DURATION=45 loadtest/overload.sh
#   # the same with junction held to 40% of its CPU (a cgroup CPU quota, root only), so that
#   # one load generator CPU can offer twice junction's capacity:
#   CORES=1 JUNCTION_CPUS=0 LOAD_CPUS=1 JUNCTION_CPU_QUOTA=40 START=1000 STEP=1000 \
#     PERIOD_MS=2000 MAX=20000 DURATION=45 loadtest/overload.sh
#   # an RFC 7339 trunk (OC=1), junction at 20% of CPU 0, the UAS beside it, the UAC alone on
#   # CPU 1, after 40 s at about junction's capacity (how issue 6's figures were taken):
#   OC=1 WARMUP_RATE=4000 WARMUP_S=40 CORES=1 JUNCTION_CPUS=0 LOAD_CPUS=1 UAS_CPUS=0 \
#     JUNCTION_CPU_QUOTA=20 START=3000 STEP=500 PERIOD_MS=4000 MAX=9000 DURATION=56 \
#     loadtest/overload.sh
#
# WARMUP_RATE and WARMUP_S (default: none) first run calls at WARMUP_RATE for WARMUP_S
# seconds, then the ramp: junction keeps every finished transaction for 32 s (64*T1), so
# its capacity falls while its tables fill; a warm-up at about capacity for 40 s lets the
# ramp's peak and its overloaded steps be measured with tables of the same size.
#
# Goodput is judged per ramp step (each PERIOD_MS long, its first second left out): a single
# second of the load generator's own report jitters when it runs near its CPU limit.
#
# Each step also shows junction's CPU time during it (% of one CPU, all its threads, sampled
# every 0.25 s) and the calls it completed per CPU second. PROBE_CPU=N runs
# `junction-load probe` pinned to CPU N beside the run and adds, per step, the median time of
# its compute and memory chains: how fast the machine itself was during that step.
#
# ALTERNATE=CPS runs two load levels in turn instead of a ramp: START calls/s, then ALTERNATE,
# then START again, each for PERIOD_MS (STEP and MAX are ignored). With START about where the
# ramp peaks and ALTERNATE at twice capacity, each overloaded step is judged against the mean
# of the steps either side of it, run within seconds of it: a machine whose speed drifts over
# tens of seconds moves both alike, which a ramp's highest step against its lowest cannot
# tell apart from overload. It prints each such ratio and their median.
#   OC=1 WARMUP_RATE=11000 WARMUP_S=40 CORES=1 JUNCTION_CPUS=0 LOAD_CPUS=1 UAS_CPUS=0 \
#     JUNCTION_CPU_QUOTA=40 START=13500 ALTERNATE=24000 PERIOD_MS=8000 DURATION=160 \
#     loadtest/overload.sh
#
# PROXY=kamailio runs the same ramp through Kamailio instead (loadtest/kamailio.cfg, CORES UDP
# workers, pinned and held to the quota like junction, every process of it counted), the
# reference for what overload does to a proxy on this machine; PIPELIMIT=N adds the
# pipelimit module, which answers new INVITEs beyond N per second 503 (set it to about
# Kamailio's own peak). Kamailio has no RFC 7339, so OC=1 is refused with it.
#   PROXY=kamailio PIPELIMIT=4000 CORES=1 JUNCTION_CPUS=0 LOAD_CPUS=1 UAS_CPUS=0 \
#     JUNCTION_CPU_QUOTA=40 START=2000 STEP=750 PERIOD_MS=4000 MAX=12000 DURATION=64 \
#     loadtest/overload.sh
source "$(dirname "$0")/lib.sh"
PROXY=${PROXY:-junction}
PIPELIMIT=${PIPELIMIT:-}
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
JUNCTION_CPU_QUOTA=${JUNCTION_CPU_QUOTA:-}
OC=${OC:-}
ALTERNATE=${ALTERNATE:-}
LIMIT=$(( DURATION + 120 ))
UAS_CPUS=${UAS_CPUS:-$LOAD_CPUS}
LOAD_PIN=()
[ -n "$LOAD_CPUS" ] && LOAD_PIN=(--cpus "$LOAD_CPUS")
UAS_PIN=()
[ -n "$UAS_CPUS" ] && UAS_PIN=(--cpus "$UAS_CPUS")
OC_ARGS=()
[ -n "$OC" ] && [ "$OC" != 0 ] && OC_ARGS=(--oc)
RATE_ARGS=(--rate "$START" --rate-step "$STEP" --rate-max "$MAX")
if [ -n "$ALTERNATE" ]; then
  RATE_ARGS=(--rate "$START" --rate-alternate "$ALTERNATE")
  STEP=0
  MAX=$START
fi

build
case $PROXY in
junction)
  junction_config "$WORK/junction.toml" "$PORT" "$METRICS" "$CORES" \
    '[[trunk]]' 'name = "uas"' "peers = [\"127.0.0.1:$UAS_PORT\"]" "send_to = \"127.0.0.1:$UAS_PORT\"" \
    '[[route]]' 'name = "all"' 'prefixes = [""]' 'trunks = ["uas"]'
  if [ -n "$JUNCTION_CPUS" ]; then
    sed -i "s/^cores = .*/&\ncpus = [$JUNCTION_CPUS]/" "$WORK/junction.toml"
  fi
  start junction "$WORK/junction.log" "$JUNCTION" --config "$WORK/junction.toml"
  J=$LAST_PID
  if [ -n "$JUNCTION_CPU_QUOTA" ]; then
    cpu_quota "$J" "$JUNCTION_CPU_QUOTA"
  fi
  wait_http_ready "$METRICS" 20
  PIDS=$J
  ;;
kamailio)
  if [ -n "$OC" ] && [ "$OC" != 0 ]; then
    echo "OC=1 needs junction: Kamailio does not speak RFC 7339" >&2
    exit 2
  fi
  need kamailio kamailio
  kamailio_command "$PORT" "$UAS_PORT" "$CORES"
  [ -n "$PIPELIMIT" ] && KAMAILIO+=(-A "PIPELIMIT=$PIPELIMIT")
  [ -n "$JUNCTION_CPUS" ] && KAMAILIO=(taskset -c "$JUNCTION_CPUS" "${KAMAILIO[@]}")
  # Kamailio forks its workers at start: they join the quota's cgroup by starting in it.
  if [ -n "$JUNCTION_CPU_QUOTA" ]; then
    cpu_cgroup "$JUNCTION_CPU_QUOTA"
    KAMAILIO=(bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CPU_CGROUP" "${KAMAILIO[@]}")
    echo "kamailio held to $JUNCTION_CPU_QUOTA% of a CPU ($CPU_CGROUP)" >&2
  fi
  start kamailio "$WORK/kamailio.log" "${KAMAILIO[@]}"
  J=$LAST_PID
  wait_udp_port "$PORT" 20
  sleep 1   # its workers, forked after the socket is bound
  PIDS="$J $(pgrep -d ' ' -P "$J" || true)"
  ;;
*)
  echo "PROXY must be junction or kamailio, not $PROXY" >&2
  exit 2
  ;;
esac
start uas "$WORK/uas.out" "$JL" uas --listen "127.0.0.1:$UAS_PORT" "${UAS_PIN[@]}" --quiet
UAS=$LAST_PID
wait_udp_port "$UAS_PORT" 10

rc=0
if [ -n "${WARMUP_RATE:-}" ]; then
  echo "--- warm-up: $WARMUP_RATE calls/s for ${WARMUP_S:-40} s"
  timeout $(( ${WARMUP_S:-40} + 60 )) "$JL" uac --target "127.0.0.1:$PORT" --rate "$WARMUP_RATE" \
    --duration "${WARMUP_S:-40}" --concurrent "$CONCURRENT" --t1-ms 500 "${LOAD_PIN[@]}" \
    "${OC_ARGS[@]}" --quiet | grep -E '^UAC:' || true
fi
: >"$WORK/cpu.txt"
sample_cpu "$PIDS" "$WORK/cpu.txt"
: >"$WORK/probe.txt"
if [ -n "${PROBE_CPU:-}" ]; then
  start probe "$WORK/probe.txt" "$JL" probe --cpu "$PROBE_CPU"
fi
timeout "$LIMIT" "$JL" uac --target "127.0.0.1:$PORT" "${RATE_ARGS[@]}" \
  --rate-period-ms "$PERIOD_MS" --duration "$DURATION" \
  --concurrent "$CONCURRENT" --t1-ms 500 --max-failures "$MAX_FAILURES" \
  "${LOAD_PIN[@]}" "${OC_ARGS[@]}" --json "$WORK/uac.json" --csv "$WORK/uac.csv" || rc=$?
sleep 0.5   # the CPU sampler's next line, past the UAC's last second
echo "--- $PROXY: $(tree_cpu "$J") s CPU"
curl -fsS "http://127.0.0.1:$METRICS/metrics" 2>/dev/null |
  grep -E '^junction_core_(rejected_overload|dropped_overload|rejected_admission|rejected_no_route|retransmissions_absorbed|dropped_stray)_total|^junction_core_oc_|^junction_datagrams_(received|dropped)_total' |
  sed 's/^/    /' || true
# The load generator writes a CSV line about once a second; when it runs at its CPU limit a
# line can come late and cover more than a second, so every count is divided by the time
# since the previous line (calls/s), never taken as one second's worth.
echo "--- curve: second, offered calls/s, completed calls/s, failed calls/s, throttled calls/s"
awk -F';' 'NR > 1 {dt = $1 - t; t = $1; if (dt <= 0) next
  printf "%6.0f %8.0f %8.0f %8.0f %8.0f\n", $1, $2, $6 / dt, $8 / dt, $NF / dt}' "$WORK/uac.csv"
awk -v start="$START" -v step="$STEP" -v period="$PERIOD_MS" -v max="$MAX" -v end="$DURATION" \
  -v alt="$ALTERNATE" -v cpufile="$WORK/cpu.txt" -v probefile="$WORK/probe.txt" '
  # the proxy'"'"'s CPU seconds at t seconds, from the sampler'"'"'s lines (ms, µs), interpolated.
  function cpu_at(t,   k, a) {
    t *= 1000
    if (ns == 0) return -1
    if (t <= sms[1]) return stk[1] / 1e6
    for (k = 2; k <= ns; k++) if (sms[k] >= t) {
      a = (t - sms[k - 1]) / (sms[k] - sms[k - 1])
      return (stk[k - 1] + a * (stk[k] - stk[k - 1])) / 1e6
    }
    return -1                                     # after the last sample
  }
  # The median of the probe'"'"'s column col (2: compute, 3: memory) from t0 to t1 seconds.
  function probe(t0, t1, col,   k, n, v, j, x) {
    n = 0
    for (k = 1; k <= np; k++) if (pms[k] >= t0 * 1000 && pms[k] <= t1 * 1000) v[++n] = col == 2 ? pc[k] : pm[k]
    if (n == 0) return -1
    for (k = 2; k <= n; k++) for (j = k; j > 1 && v[j - 1] > v[j]; j--) {x = v[j]; v[j] = v[j - 1]; v[j - 1] = x}
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  FILENAME == cpufile {if (NF == 2 && (ns == 0 || $1 > sms[ns])) {ns++; sms[ns] = $1; stk[ns] = $2}; next}
  FILENAME == probefile {if (NF == 3) {np++; pms[np] = $1; pc[np] = $2; pm[np] = $3}; next}
  FNR > 1 && $2 > 0 && $1 != last && $1 <= end + 0.5 {
    dt = $1 - last; last = $1
    i = int(($1 - 0.5) * 1000 / period)          # the ramp step this second belongs to
    if (i != cur) {cur = i; first = 1} else first = 0
    if (first) {from[i] = $1; next}               # a step'"'"'s first second is a transition
    ok[i] += $6; bad[i] += $8; cnt[i] += dt; to[i] = $1; if (i > top) top = i
  }
  END {
    print "--- per ramp step (its first second left out): offered calls/s, completed calls/s, failed calls/s, the proxy'"'"'s CPU % of one CPU, completed calls per proxy CPU second" (np ? ", probe compute ns, probe memory ns (medians)" : "")
    for (i = 0; i <= top; i++) {
      if (!cnt[i]) continue
      o = start + step * i; if (o > max) o = max
      if (alt != "" && i % 2 == 1) o = alt
      c = ok[i] / cnt[i]; f = bad[i] / cnt[i]
      a = cpu_at(from[i]); b = cpu_at(to[i])
      if (a >= 0 && b > a && to[i] > from[i]) printf "%8d %10.0f %10.0f %8.1f %10.0f", o, c, f, 100 * (b - a) / (to[i] - from[i]), ok[i] / (b - a)
      else printf "%8d %10.0f %10.0f %8s %10s", o, c, f, "-", "-"
      if (np) printf " %8.3f %8.1f", probe(from[i], to[i], 2), probe(from[i], to[i], 3)
      printf "\n"
      off[i] = o; good[i] = c; if (o > omax) omax = o
      if (c > peak) {peak = c; at = i}
    }
    # Every step offered more than the peak is overloaded, whether it came before the peak
    # or after it: the lowest of them is what overload left of the capacity.
    low = peak; lowoff = off[at]
    for (i = 0; i <= top; i++) if (cnt[i] && off[i] > peak && good[i] < low) {low = good[i]; lowoff = off[i]}
    if (peak > 0) printf "--- goodput: peak %.0f completed calls/s (offered %d); lowest of the steps offered more than the peak %.0f (offered %d): %.1f%% of the peak; offered up to %d calls/s = %.2fx the peak\n", peak, off[at], low, lowoff, 100 * low / peak, omax, omax / peak
    if (alt == "") exit
    # Alternating: each ALTERNATE step against the mean of the START steps either side.
    n = 0
    for (i = 1; i <= top; i += 2) {
      if (!cnt[i]) continue
      s = 0; k = 0
      if (cnt[i - 1]) {s += good[i - 1]; k++}
      if (i + 1 <= top && cnt[i + 1]) {s += good[i + 1]; k++}
      if (!k || s == 0) continue
      r[++n] = 100 * good[i] * k / s
      printf "--- step %d (offered %d): %.0f completed calls/s, %.1f%% of the mean of its neighbours at %d offered\n", i, alt, good[i], r[n], start
    }
    if (!n) exit
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (r[j] < r[i]) {t = r[i]; r[i] = r[j]; r[j] = t}
    med = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
    printf "--- alternating: %d steps at %d offered against their neighbours at %d: median %.1f%%, lowest %.1f%%, highest %.1f%%\n", n, alt, start, med, r[1], r[n]
  }' "$WORK/cpu.txt" "$WORK/probe.txt" FS=';' "$WORK/uac.csv"
stop "$UAS"
echo "--- UAS"
cat "$WORK/uas.out"
exit $rc
