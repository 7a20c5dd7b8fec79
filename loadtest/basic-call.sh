#!/usr/bin/env bash
# Basic calls through junction on loopback: junction-load UAS on 127.0.0.1:5070 behind a
# 2-shard junction on 127.0.0.1:5060, junction-load UAC placing CALLS calls at RATE calls/s.
# Fails (exit 1) on any failed call.
#
#   loadtest/basic-call.sh                    # 100000 calls at 2000/s (about 50 s)
#   CALLS=20000 RATE=1000 HOLD_MS=100 loadtest/basic-call.sh
#   HOLD_MS=5000 UAS_ARGS="--uas-hangup-ms 50" loadtest/basic-call.sh    # the callee hangs up
#   UAC_ARGS="-t u1" loadtest/basic-call.sh                              # one 4-tuple
source "$(dirname "$0")/lib.sh"
CALLS=${CALLS:-100000}
RATE=${RATE:-2000}
HOLD_MS=${HOLD_MS:-0}
PORT=${PORT:-5060}
UAS_PORT=${UAS_PORT:-5070}
METRICS=${METRICS:-9091}
CORES=${CORES:-2}
UAS_ARGS=${UAS_ARGS:-}
UAC_ARGS=${UAC_ARGS:-}
LIMIT=$(( CALLS / RATE + HOLD_MS / 1000 + 90 ))

build
junction_config "$WORK/junction.toml" "$PORT" "$METRICS" "$CORES" \
  '[[trunk]]' 'name = "uas"' "peers = [\"127.0.0.1:$UAS_PORT\"]" "send_to = \"127.0.0.1:$UAS_PORT\"" \
  '[[route]]' 'name = "all"' 'prefixes = [""]' 'trunks = ["uas"]'
start junction "$WORK/junction.log" "$JUNCTION" --config "$WORK/junction.toml"
J=$LAST_PID
wait_http_ready "$METRICS" 20
# shellcheck disable=SC2086
start uas "$WORK/uas.out" "$JL" uas --listen "127.0.0.1:$UAS_PORT" --quiet $UAS_ARGS
UAS=$LAST_PID
wait_udp_port "$UAS_PORT" 10

rc=0
# shellcheck disable=SC2086
timeout "$LIMIT" "$JL" uac $UAC_ARGS --target "127.0.0.1:$PORT" --number 2125551234 --rate "$RATE" \
  --calls "$CALLS" --hold-ms "$HOLD_MS" --max-failures 0 --json "$WORK/uac.json" || rc=$?
JCPU=$(proc_cpu "$J")
stop "$UAS"
echo "--- UAS"
cat "$WORK/uas.out"
echo "--- junction: $JCPU s CPU"
if [ $rc -ne 0 ]; then echo "basic-call: FAILED (exit $rc)"; tail -20 "$WORK/junction.log"; fi
exit $rc
