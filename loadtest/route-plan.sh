#!/usr/bin/env bash
# A route plan checked at load through junction: calls from a carrier trunk (the UAC on
# 127.0.0.2) to two gateways and a PBX (plans/three-trunks.toml.in), their numbers from an
# injection file (plans/three-trunks.csv, SIPp's -inf format) and from generators. `junction
# route-test --format tsv` turns the calls into expectations; one junction-load process plays
# the three trunks (named UASes on 127.0.0.3, .4 and .5, port 5060), and the UAC judges every
# call by what reached which trunk with which numbers. Exit 1 on any misrouted call, or when
# failures pass MAX_FAILURES.
#
#   loadtest/route-plan.sh                        # 50000 calls at 5000 calls/s
#   RATE=2000 CALLS=20000 loadtest/route-plan.sh
#   MISTAKE=1 loadtest/route-plan.sh              # junction's NANP route points at the PBX:
#                                                 # the report shows the misrouted calls
#
# Parameters: RATE, CALLS, PLAN_CALLS (distinct calls in the plan, placed in turn), CORES
# (junction's shards), PORT, METRICS, MAX_FAILURES (N or N%, default 0), KEEP=DIR (keep the
# plan, the expectations, the record of every call and the reports).
source "$(dirname "$0")/lib.sh"
RATE=${RATE:-5000}
CALLS=${CALLS:-50000}
PLAN_CALLS=${PLAN_CALLS:-2000}
CORES=${CORES:-2}
PORT=${PORT:-15060}
METRICS=${METRICS:-19095}
MAX_FAILURES=${MAX_FAILURES:-0}
MISTAKE=${MISTAKE:-0}
LIMIT=$(( CALLS / RATE + 90 ))
PLANS=$ROOT/loadtest/plans

build
plan_config() { # FILE NANP-TRUNK
  sed -e "s/@PORT@/$PORT/; s/@METRICS@/$METRICS/; s/@CORES@/$CORES/; s/@NANP@/$2/" \
    "$PLANS/three-trunks.toml.in" >"$1"
}
plan_config "$WORK/planned.toml" gw-a
if [ "$MISTAKE" = 1 ]; then
  plan_config "$WORK/junction.toml" pbx
  echo "MISTAKE=1: junction runs with the NANP route pointed at the PBX" >&2
else
  cp "$WORK/planned.toml" "$WORK/junction.toml"
fi

# The calls: a fifth from the injection file (called;calling), the rest from generators.
"$JL" numbers --from carrier --count $(( PLAN_CALLS / 5 )) --inf "$PLANS/three-trunks.csv" \
  --number '[field0]' --calling '[field1]' >"$WORK/calls.csv"
"$JL" numbers --from carrier --count $(( PLAN_CALLS - PLAN_CALLS / 5 )) \
  --numbers '646555XXXX:3,1310555XXXX:1,01144207946XXXX:1,212555XXXX:1' \
  --calling-numbers '718555XXXX' >>"$WORK/calls.csv"
"$JUNCTION" route-test "$WORK/planned.toml" --file "$WORK/calls.csv" --format tsv >"$WORK/expect.tsv"
echo "plan: $(grep -vc '^#' "$WORK/expect.tsv") calls; expected first trunk:" \
  "$(awk -F'\t' '!/^#/ {print ($7 == "route" ? $8 : $7)}' "$WORK/expect.tsv" | sort | uniq -c | tr '\n' ' ')"

start junction "$WORK/junction.log" "$JUNCTION" --config "$WORK/junction.toml"
J=$LAST_PID
wait_http_ready "$METRICS" 30
start trunks "$WORK/trunks.out" "$JL" uas --listen 127.0.0.3:5060 --name gw-a \
  --listen 127.0.0.4:5060 --name gw-b --listen 127.0.0.5:5060 --name pbx \
  --record "$WORK/record.tsv" --quiet --json "$WORK/trunks.json"
T=$LAST_PID
wait_udp_port 5060 10

rc=0
timeout "$LIMIT" "$JL" uac --target "127.0.0.1:$PORT" --local-ip 127.0.0.2 \
  --expect "$WORK/expect.tsv" --rate "$RATE" --calls "$CALLS" \
  --max-failures "$MAX_FAILURES" --json "$WORK/uac.json" 2>"$WORK/uac.live" | tee "$WORK/uac.out" || rc=$?
stop "$T"
echo "--- the trunks (junction-load uas):"
grep -E '^UAS|calls by trunk' "$WORK/trunks.out" || true
misrouted=$(jq '.uac.route_check.misrouted' "$WORK/uac.json" 2>/dev/null || echo "?")
if [ -n "${KEEP:-}" ]; then
  mkdir -p "$KEEP" && cp "$WORK"/{planned.toml,junction.toml,calls.csv,expect.tsv,record.tsv,uac.json,trunks.json,uac.out,uac.live} "$KEEP"/
  echo "kept in $KEEP"
fi
if [ "$rc" -eq 0 ]; then
  echo "route-plan: PASS ($misrouted misrouted)"
else
  echo "route-plan: FAILED (exit $rc, $misrouted misrouted)"
  kill -0 "$J" 2>/dev/null || { echo "junction died:"; tail -20 "$WORK/junction.log"; }
fi
exit "$rc"
