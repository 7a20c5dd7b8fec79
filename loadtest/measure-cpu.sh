#!/usr/bin/env bash
# CPU time per call of junction-load against SIPp, UAC plus UAS, direct (no proxy), at the same
# rate and call count, each repeated; prints every run and the medians.
#
#   loadtest/measure-cpu.sh                 # 1000 calls/s, 20000 calls, 3 runs each
#   RATE=2000 CALLS=40000 REPEAT=5 loadtest/measure-cpu.sh
#   JL_ARGS="--tick-us 5000" loadtest/measure-cpu.sh
#
# CPU time is utime+stime from /proc/<pid>/stat: read for the UAS after the UAC finished (then
# the UAS is stopped), and for the UAC by polling until it exits (it is idle at its very end).
# SIPp runs the Record-Route-aware scenarios of tests/data/sipp with its default
# transport (u1); junction-load runs its built-in basic call with its defaults (un) and u1.
# Loopback only; everything started here is stopped on exit; each run is bounded by timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-1000}
CALLS=${CALLS:-20000}
REPEAT=${REPEAT:-3}
JL_ARGS=${JL_ARGS:-}
PORT=${PORT:-15070}
SCEN=${SCEN:-$PWD/tests/data/sipp}
command -v sipp >/dev/null || { echo "sipp missing: apt-get install -y sip-tester" >&2; exit 2; }
cargo build --release -q -p junction-load
JL=target/release/junction-load
HZ=$(getconf CLK_TCK)
LIMIT=$(( CALLS / RATE + 60 ))
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Poll a process's CPU ticks until it exits; print the last value.
follow() {
  local pid=$1 last=0 v
  while [ -e "/proc/$pid/stat" ]; do
    v=$(ticks "$pid"); [ "$v" -gt 0 ] 2>/dev/null && last=$v
    sleep 0.02
  done
  echo "$last"
}

# run NAME UAS-COMMAND... -- UAC-COMMAND...  -> prints "uac_ticks uas_ticks"
run() {
  local uas=() uac=() seen=0
  for a in "$@"; do
    if [ "$a" = "--" ]; then seen=1; continue; fi
    if [ $seen = 0 ]; then uas+=("$a"); else uac+=("$a"); fi
  done
  "${uas[@]}" >"$TMP/uas.out" 2>&1 &
  local U=$!; PIDS+=("$U")
  sleep 0.5
  "${uac[@]}" >"$TMP/uac.out" 2>&1 &
  local C=$!; PIDS+=("$C")
  # Bound the run in time: a watchdog stops both if the UAC has not finished by then.
  ( sleep "$LIMIT"; kill "$C" "$U" 2>/dev/null ) &
  local W=$!; PIDS+=("$W")
  local uac_ticks; uac_ticks=$(follow "$C")
  wait "$C" || { echo "UAC failed:" >&2; tail -5 "$TMP/uac.out" >&2; }
  [ -e "/proc/$U/stat" ] || { echo "UAS died early:" >&2; tail -5 "$TMP/uas.out" >&2; }
  kill "$W" 2>/dev/null || true; wait "$W" 2>/dev/null || true
  sleep 0.5
  local uas_ticks; uas_ticks=$(ticks "$U")
  kill -TERM "$U" 2>/dev/null || true; wait "$U" 2>/dev/null || true
  echo "$uac_ticks $uas_ticks"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A RESULTS
measure() {
  local name=$1; shift
  local totals=()
  for i in $(seq 1 "$REPEAT"); do
    read -r c u < <(run "$@")
    local us=$(( (c + u) * 1000000 / HZ / CALLS ))
    printf '%-26s run %d: UAC %5.2f s  UAS %5.2f s  -> %4d us CPU per call\n' "$name" "$i" \
      "$(echo "$c / $HZ" | bc -l)" "$(echo "$u / $HZ" | bc -l)" "$us"
    totals+=("$us")
  done
  RESULTS[$name]=$(printf '%s\n' "${totals[@]}" | median)
}

L=127.0.0.1:$PORT
measure "SIPp (uas-rr/uac-rr)" \
  sipp -sf "$SCEN/uas-rr.xml" -i 127.0.0.1 -p "$PORT" -nostdin -- \
  sipp -sf "$SCEN/uac-rr.xml" -s 2125551234 "$L" -i 127.0.0.1 -p $((PORT + 1)) -r "$RATE" -m "$CALLS" -d 0 -nostdin
# shellcheck disable=SC2086
measure "junction-load (un)" \
  $JL uas --listen "$L" --quiet $JL_ARGS -- \
  $JL uac --target "$L" --rate "$RATE" --calls "$CALLS" --quiet --max-failures 0 $JL_ARGS
# shellcheck disable=SC2086
measure "junction-load (u1)" \
  $JL uas --listen "$L" --quiet $JL_ARGS -- \
  $JL uac --target "$L" --rate "$RATE" --calls "$CALLS" --quiet --max-failures 0 -t u1 $JL_ARGS

echo
echo "median CPU per call (UAC + UAS), $CALLS calls at $RATE calls/s, $REPEAT runs:"
s=${RESULTS["SIPp (uas-rr/uac-rr)"]}
for k in "SIPp (uas-rr/uac-rr)" "junction-load (un)" "junction-load (u1)"; do
  v=${RESULTS[$k]}
  printf '  %-26s %5d us   %5.2f x SIPp\n' "$k" "$v" "$(echo "$v / $s" | bc -l)"
done
