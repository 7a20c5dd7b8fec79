#!/usr/bin/env bash
# Repeat the overload ramp (overload.sh, with this environment) RAMPS times, each with a fresh
# junction, UAS and warm-up, and judge goodput on the median curve as well as ramp by ramp.
#
# Why: on a shared or virtual machine the same build at the same offered load completes
# calls at a rate that wanders by several percent from one few-second step to the next
# (the host, not the load: junction's CPU time stays at its quota while its calls per CPU
# second move). One ramp's figure is the lowest of a dozen overloaded steps over the highest
# step, so it carries that wander twice. The median of each step over several ramps keeps
# the curve's shape and drops most of it; each ramp's own figure is printed too.
#
#   RAMPS=5 OC=1 WARMUP_RATE=11000 WARMUP_S=40 CORES=1 JUNCTION_CPUS=0 LOAD_CPUS=1 \
#     UAS_CPUS=0 JUNCTION_CPU_QUOTA=40 START=6000 STEP=1500 PERIOD_MS=4000 MAX=24000 \
#     DURATION=64 loadtest/overload-repeat.sh
#
# With ALTERNATE (see overload.sh) each run's alternating figure is printed too, and at the
# end every overloaded step of every run against its neighbours, pooled.
#
# RAMPS (default 5): how many ramps. KEEP=DIR keeps each ramp's full output in DIR.
# Exits non-zero if a ramp does.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RAMPS=${RAMPS:-5}
OUT=${KEEP:-$(mktemp -d /tmp/junction-ramps.XXXXXX)}
mkdir -p "$OUT"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$OUT"' EXIT

for i in $(seq 1 "$RAMPS"); do
  "$HERE/overload.sh" >"$OUT/ramp$i.txt" 2>&1 || {
    echo "ramp $i failed; its output:" >&2
    tail -n 40 "$OUT/ramp$i.txt" >&2
    exit 1
  }
  echo "ramp $i: $(grep -- '--- goodput' "$OUT/ramp$i.txt" || echo 'no goodput line')"
  grep -- '--- alternating' "$OUT/ramp$i.txt" | sed "s/^/ramp $i: /" || true
done

# Each ramp's per-step table: offered and completed calls/s, one row per step.
for i in $(seq 1 "$RAMPS"); do
  sed -n '/^--- per ramp step/,/^--- goodput/p' "$OUT/ramp$i.txt" |
    awk -v r="$i" 'NF >= 3 && $1 ~ /^[0-9]+$/ {print r, NR, $1, $2}'
done | awk -v ramps="$RAMPS" '
  {step = $2; off[step] = $3; done[step, $1] = $4; if (step > top) top = step}
  function median(step,   n, i, j, t, v) {
    n = 0
    for (i = 1; i <= ramps; i++) if ((step, i) in done) v[++n] = done[step, i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) {t = v[j]; v[j] = v[j - 1]; v[j - 1] = t}
    if (n == 0) return -1
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  END {
    print "--- median curve over " ramps " ramps: offered calls/s, median completed calls/s, each ramp"
    for (s = 1; s <= top; s++) {
      if (!(s in off)) continue
      m = median(s); if (m < 0) continue
      line = sprintf("%8d %10.0f   ", off[s], m)
      for (i = 1; i <= ramps; i++) line = line sprintf(" %6s", (s, i) in done ? done[s, i] : "-")
      print line
      good[s] = m; if (m > peak) {peak = m; at = s}
    }
    low = peak; lowoff = off[at]
    for (s = 1; s <= top; s++) if ((s in good) && off[s] > peak && good[s] < low) {low = good[s]; lowoff = off[s]}
    if (peak > 0) printf "--- median goodput: peak %.0f completed calls/s (offered %d); lowest of the steps offered more than the peak %.0f (offered %d): %.1f%% of the peak\n", peak, off[at], low, lowoff, 100 * low / peak
  }'

# ALTERNATE runs: every overloaded step of every run against its neighbours, pooled.
if [ -n "${ALTERNATE:-}" ]; then
  cat "$OUT"/ramp*.txt | sed -n 's/^--- step .*, \([0-9.]*\)% of the mean of its neighbours.*/\1/p' |
    sort -g | awk '{v[++n] = $1} END {
      if (!n) exit
      m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      printf "--- alternating, all runs: %d overloaded steps against their neighbours: median %.1f%%, lowest %.1f%%, highest %.1f%%\n", n, m, v[1], v[n]
    }'
fi
