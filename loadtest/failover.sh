#!/usr/bin/env bash
# Failover through junction on loopback: two gateways, gw-a (127.0.0.1:5071) on the primary
# route answers every call 503 with no 180 first (junction fails over only until a provisional
# was relayed, unless [routing] failover_after_provisional), gw-b (127.0.0.1:5072) on the
# backup route answers 200. Every call must succeed at the UAC and reach gw-b.
#
#   loadtest/failover.sh                      # 5000 calls at 500/s
#   CALLS=20000 RATE=1000 loadtest/failover.sh
source "$(dirname "$0")/lib.sh"
CALLS=${CALLS:-5000}
RATE=${RATE:-500}
PORT=${PORT:-5060}
METRICS=${METRICS:-9091}
A=${GW_A_PORT:-5071}
B=${GW_B_PORT:-5072}
LIMIT=$(( CALLS / RATE + 90 ))

need jq jq
build
two_gateways_config "$WORK/junction.toml" "$PORT" "$METRICS" "$A" "$B"
start junction "$WORK/junction.log" "$JUNCTION" --config "$WORK/junction.toml"
J=$LAST_PID
wait_http_ready "$METRICS" 20
start gw-a "$WORK/gw-a.out" "$JL" uas --listen "127.0.0.1:$A" --answer 503 --no-ringing --quiet --json "$WORK/gw-a.json"
GA=$LAST_PID
start gw-b "$WORK/gw-b.out" "$JL" uas --listen "127.0.0.1:$B" --answer 200 --quiet --json "$WORK/gw-b.json"
GB=$LAST_PID
wait_udp_port "$A" 10
wait_udp_port "$B" 10

rc=0
timeout "$LIMIT" "$JL" uac --target "127.0.0.1:$PORT" --rate "$RATE" --calls "$CALLS" \
  --max-failures 0 --json "$WORK/uac.json" || rc=$?
stop "$GA"
stop "$GB"
a503=$(jq '.uas.uas.answered["503"] // 0' "$WORK/gw-a.json")
b200=$(jq '.uas.uas.answered["200"] // 0' "$WORK/gw-b.json")
ok=$(jq '.uac.calls.succeeded' "$WORK/uac.json")
echo "failover: $ok of $CALLS calls succeeded; gw-a answered 503 to $a503, gw-b answered 200 to $b200"
if [ "$b200" -ne "$CALLS" ]; then
  echo "failover: gw-b should have answered every call" >&2
  rc=1
fi
[ $rc -eq 0 ] && echo "failover: PASS" || { echo "failover: FAILED"; tail -20 "$WORK/junction.log"; }
exit $rc
