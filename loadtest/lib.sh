# Shared by the loadtest/*.sh scripts: build, start and stop what a run needs, on loopback.
# Source it; it sets a trap that stops everything started through `start` and removes $WORK.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JL=$ROOT/target/release/junction-load
# JUNCTION_BIN runs another junction build (an A/B comparison); the default is this tree's.
JUNCTION=${JUNCTION_BIN:-$ROOT/target/release/junction}
WORK=$(mktemp -d /tmp/junction-load.XXXXXX)
STARTED=()

cleanup() {
  local p
  for p in "${STARTED[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in "${STARTED[@]:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  [ -n "${CPU_CGROUP:-}" ] && rmdir "$CPU_CGROUP" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

build() {
  (cd "$ROOT" && cargo build --release -q -p junction -p junction-load)
}

# start NAME LOGFILE COMMAND...: run in the background, remember the pid in $LAST_PID.
start() {
  local name=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 &
  LAST_PID=$!
  STARTED+=("$LAST_PID")
  echo "started $name (pid $LAST_PID)" >&2
}

# stop PID: SIGTERM and wait (junction-load prints its report on SIGTERM).
stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# wait_udp_port PORT SECONDS: until something listens on 127.0.0.1:PORT/udp.
wait_udp_port() {
  local port=$1 i
  for i in $(seq 1 $(( $2 * 10 ))); do
    if ss -Hlun "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on udp port $port after $2 s" >&2
  return 1
}

# wait_http_ready PORT SECONDS: until GET /ready on 127.0.0.1:PORT answers 200.
wait_http_ready() {
  local port=$1 i
  for i in $(seq 1 $(( $2 * 10 ))); do
    if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
      printf 'GET /ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
      if head -n 1 <&3 | grep -q ' 200'; then exec 3>&-; return 0; fi
      exec 3>&-
    fi
    sleep 0.1
  done
  echo "junction not ready on metrics port $port after $2 s" >&2
  return 1
}

# cpu_quota PID PERCENT: hold a process to PERCENT of one CPU with a cgroup CPU quota of
# 1 ms (the least the kernel takes) per period of 100/PERCENT ms: at 20% a throttled process
# waits at most 4 ms and, when the CPU has time for the load, empties its socket within its
# next millisecond, so throttling shows as a slower CPU, not as stalls that look like a
# backlog (10 ms periods made 8 ms gaps at 20% and shed calls the CPU still had time for).
# Root only; the cgroup is removed on exit. Used to shrink junction's capacity below what
# one load CPU can offer.
cpu_quota() {
  cpu_cgroup "$2"
  echo "$1" >"$CPU_CGROUP/cgroup.procs"
  echo "pid $1 held to $2% of a CPU ($CPU_CGROUP)" >&2
}

# cpu_cgroup PERCENT: the cgroup of cpu_quota, made and left empty, in $CPU_CGROUP; a
# process that forks its workers at start (Kamailio) is started inside it, so that they are
# all held to the quota.
cpu_cgroup() {
  local quota=1000 period=$(( 100000 / $1 ))
  if [ -d /sys/fs/cgroup/cpu ]; then          # cgroup v1
    CPU_CGROUP=/sys/fs/cgroup/cpu/junction-load-$$
    mkdir -p "$CPU_CGROUP"
    echo "$period" >"$CPU_CGROUP/cpu.cfs_period_us"
    echo "$quota" >"$CPU_CGROUP/cpu.cfs_quota_us"
  else                                         # cgroup v2
    CPU_CGROUP=/sys/fs/cgroup/junction-load-$$
    mkdir -p "$CPU_CGROUP"
    echo "$quota $period" >"$CPU_CGROUP/cpu.max"
  fi
}

# proc_cpu PID: utime+stime of a live process, in seconds.
proc_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# two_gateways_config FILE PORT METRICS_PORT A B: a 2-shard junction with the UAC trunk and
# two gateways on 127.0.0.1: gw-a (port A) on the primary route, gw-b (port B) on the backup
# route, so that every call tries gw-a first.
two_gateways_config() {
  local a=$4 b=$5
  junction_config "$1" "$2" "$3" 2 \
    '[[trunk]]' 'name = "gw-a"' "peers = [\"127.0.0.1:$a\"]" "send_to = \"127.0.0.1:$a\"" \
    '[[trunk]]' 'name = "gw-b"' "peers = [\"127.0.0.1:$b\"]" "send_to = \"127.0.0.1:$b\"" \
    '[[route]]' 'name = "primary"' 'prefixes = [""]' 'trunks = ["gw-a"]' 'priority = 10' \
    '[[route]]' 'name = "backup"' 'prefixes = [""]' 'trunks = ["gw-b"]' 'priority = 20'
}

# sample_cpu "PID..." FILE: in the background, every 0.25 s until the first PID ends,
# append a line to FILE: milliseconds since this call, and the CPU time all the threads of
# the PIDs have run, in microseconds (the scheduler's own account,
# /proc/PID/task/*/schedstat, exact where /proc/PID/stat counts ticks). A ramp compares each
# step's calls with the CPU time the proxy had for them (calls per CPU second), which tells
# a slower machine (fewer calls per CPU second) from a process that was given, or took,
# less CPU. Started through `start`, so the trap stops it.
sample_cpu() {
  start "cpu sampler" /dev/null bash -c '
    t0=${EPOCHREALTIME/./}
    read -ra pids <<<"$0"
    while [ -d "/proc/${pids[0]}/task" ]; do
      now=${EPOCHREALTIME/./} ns=0
      for p in "${pids[@]}"; do
        for t in /proc/$p/task/*/schedstat; do
          read -r run _ <"$t" && ns=$(( ns + run ))
        done
      done
      echo "$(( (now - t0) / 1000 )) $(( ns / 1000 ))" >>"$1"
      sleep 0.25
    done 2>/dev/null' "$1" "$2"
}

# junction_config FILE PORT METRICS_PORT CORES TRUNK-LINES...: a config with the UAC trunk
# (any port on 127.0.0.1) and the given gateway trunks and routes appended verbatim.
junction_config() {
  local file=$1 port=$2 metrics=$3 cores=$4; shift 4
  {
    cat <<EOF
[server]
cores = $cores
listen = "udp:127.0.0.1:$port"
metrics = "127.0.0.1:$metrics"

[[trunk]]
name = "loadgen"
peers = ["127.0.0.1"]
EOF
    printf '%s\n' "$@"
  } >"$file"
}

# kamailio_command PORT UAS_PORT WORKERS: Kamailio's command line in the array KAMAILIO:
# loadtest/kamailio.cfg in the foreground (so that it is ours to stop), listening on
# 127.0.0.1:PORT, relaying to the UAS, with WORKERS UDP workers (the core budget) and 2 GiB of
# shared memory: at 2000 calls/s tm keeps ~20000 transactions in their wait state, more than
# the 256 MiB that look plenty (they end in "out of mem" 500s).
kamailio_command() {
  KAMAILIO=(kamailio -DD -E -f "$ROOT/loadtest/kamailio.cfg" -A "LISTEN=udp:127.0.0.1:$1"
    -A "UAS=\"sip:127.0.0.1:$2\"" -A "WORKERS=$3" -m 2048 -M 32 -w "$WORK")
}

# tree_cpu PID: utime+stime of a process and all its descendants (Kamailio forks workers),
# in seconds.
tree_cpu() {
  local hz total=0 p
  hz=$(getconf CLK_TCK)
  local pids=("$1")
  local i=0
  while [ $i -lt ${#pids[@]} ]; do
    for p in $(pgrep -P "${pids[$i]}" 2>/dev/null || true); do pids+=("$p"); done
    i=$((i + 1))
  done
  for p in "${pids[@]}"; do
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0) ))
  done
  awk -v t="$total" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}'
}

need() { # need COMMAND DEBIAN-PACKAGE: install the package when the command is missing
  command -v "$1" >/dev/null && return 0
  echo "installing $2 for $1" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  }
}
