#!/usr/bin/env bash
# RFC 7339 toward a gateway, through junction on loopback: gw-a (127.0.0.1:5071) on the primary
# route is an overloaded gateway that answers junction's oc offer with oc=REDUCE in every
# response (junction-load uas --oc-reduce); gw-b (127.0.0.1:5072) on the backup route is a
# plain gateway. junction withholds REDUCE% of the new calls from gw-a and sends them to gw-b
# instead. Every call must succeed at the UAC, and gw-a must get (100 - REDUCE)% of the calls
# to within TOLERANCE percentage points (the first calls, placed before gw-a's first
# response arrived, all go to gw-a).
#
#   loadtest/gateway-overload.sh                   # 5000 calls at 500/s, gw-a asks for 50%
#   REDUCE=80 CALLS=20000 RATE=2000 loadtest/gateway-overload.sh
source "$(dirname "$0")/lib.sh"
CALLS=${CALLS:-5000}
RATE=${RATE:-500}
REDUCE=${REDUCE:-50}
TOLERANCE=${TOLERANCE:-2}
PORT=${PORT:-5060}
METRICS=${METRICS:-9091}
A=${GW_A_PORT:-5071}
B=${GW_B_PORT:-5072}
LIMIT=$(( CALLS / RATE + 90 ))

need jq jq
build
two_gateways_config "$WORK/junction.toml" "$PORT" "$METRICS" "$A" "$B"
start junction "$WORK/junction.log" "$JUNCTION" --config "$WORK/junction.toml"
wait_http_ready "$METRICS" 20
start gw-a "$WORK/gw-a.out" "$JL" uas --listen "127.0.0.1:$A" --oc-reduce "$REDUCE" --quiet \
  --json "$WORK/gw-a.json"
GA=$LAST_PID
start gw-b "$WORK/gw-b.out" "$JL" uas --listen "127.0.0.1:$B" --quiet --json "$WORK/gw-b.json"
GB=$LAST_PID
wait_udp_port "$A" 10
wait_udp_port "$B" 10

rc=0
timeout "$LIMIT" "$JL" uac --target "127.0.0.1:$PORT" --rate "$RATE" --calls "$CALLS" \
  --max-failures 0 --json "$WORK/uac.json" || rc=$?
curl -fsS "http://127.0.0.1:$METRICS/metrics" 2>/dev/null |
  grep -E '^junction_trunk_(overload_reduction_ratio|admission_refused_total)\{trunk="gw-a"|^junction_core_oc_feedback' |
  grep -v 'limit="max_' | sed 's/^/    /' || true
stop "$GA"
stop "$GB"
a=$(jq '.uas.uas.calls // 0' "$WORK/gw-a.json")
b=$(jq '.uas.uas.calls // 0' "$WORK/gw-b.json")
ok=$(jq '.uac.calls.succeeded' "$WORK/uac.json")
share=$(awk -v a="$a" -v n="$CALLS" 'BEGIN {printf "%.1f", 100 * a / n}')
want=$(( 100 - REDUCE ))
echo "gateway-overload: $ok of $CALLS calls succeeded; gw-a (asking for $REDUCE% fewer) got $a ($share%, want $want%), gw-b got $b"
if ! awk -v s="$share" -v w="$want" -v t="$TOLERANCE" 'BEGIN {exit !(s >= w - t && s <= w + t)}'; then
  echo "gateway-overload: gw-a's share is not within $TOLERANCE points of $want%" >&2
  rc=1
fi
if [ $(( a + b )) -ne "$CALLS" ]; then
  echo "gateway-overload: the gateways got $(( a + b )) calls, not $CALLS" >&2
  rc=1
fi
[ $rc -eq 0 ] && echo "gateway-overload: PASS" || { echo "gateway-overload: FAILED"; tail -20 "$WORK/junction.log"; }
exit $rc
