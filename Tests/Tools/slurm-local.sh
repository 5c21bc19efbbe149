#!/usr/bin/env bash
# A real one-node Slurm cluster on 127.0.0.1 (munged + slurmctld + slurmd, no slurmdbd) for the
# batch tests. Root or any user. Recipe and pitfalls: /work/shared/BATCH-AND-UPLOAD-FACTS.md 1.1,
# checked on Debian 12 (slurm-wlm 22.05.8, munge 0.5.15).
#
#   slurm-local.sh start DIR    -> DIR/{munge,state,spool,log}, DIR/slurm.conf, DIR/pids (munged,
#                                  slurmctld, slurmd, one per line, in start order); prints
#                                  SLURM_CONF=DIR/slurm.conf once the node is idle
#   slurm-local.sh stop DIR     cancel the jobs, TERM the pids in DIR/pids newest first (KILL after
#                               10 s each), then any job process of this cluster left over
#
# Ports: $CTLD_PORT and $SLURMD_PORT, or two free ones of 127.0.0.1 picked here. With
# REHOST_SLURM_OWNER_PID set, a watchdog per daemon (DIR/watchdog.pids) stops it when that process
# (the test run) is gone. Every process is stopped by its pid, never by name. Job state comes from
# `scontrol -o show job` (kept MinJobAge=600 s) and DIR/log/jobcomp.txt; there is no sacct.
set -euo pipefail

PY=${REHOST_SLURM_PYTHON:-/usr/bin/python3}
START_TIMEOUT=${REHOST_SLURM_START_TIMEOUT:-30}

die() { echo "slurm-local: $*" >&2; exit 1; }
log_tail() { [ -f "$1" ] && { echo "--- last lines of $1:" >&2; tail -n 40 "$1" >&2; }; return 0; }
logs_tail() {
  local f
  for f in "$1"/log/*; do log_tail "$f"; done
}

# detach and WATCHDOG, as cloud-servers.sh starts its servers
source "$(dirname "${BASH_SOURCE[0]}")/detached.sh"

# spawn DIR LOG CMD...: CMD detached in the background, stdin closed, stdout and stderr to LOG;
# its pid appended to DIR/pids, and a watchdog's to DIR/watchdog.pids with REHOST_SLURM_OWNER_PID.
SPAWNED=
spawn() {
  local dir=$1 logfile=$2; shift 2
  detach "$@" < /dev/null >> "$logfile" 2>&1 &
  SPAWNED=$!
  echo "$SPAWNED" >> "$dir/pids"
  if [ -n "${REHOST_SLURM_OWNER_PID:-}" ]; then
    detach "$PY" -c "$WATCHDOG" "$REHOST_SLURM_OWNER_PID" "$SPAWNED" < /dev/null > /dev/null 2>&1 &
    echo "$!" >> "$dir/watchdog.pids"
  fi
}

# alive PID: the process exists and is not a zombie (kill -0 succeeds on a zombie).
alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# fail DIR MESSAGE: the logs' tails and MESSAGE on stderr, whatever was started stopped, exit 1.
fail() {
  logs_tail "$1"
  cmd_stop "$1" >&2 || true
  die "$2"
}

# wait_for DIR SECONDS WHAT PID CMD...: until CMD succeeds; fails when PID died or time ran out.
wait_for() {
  local dir=$1 seconds=$2 what=$3 pid=$4; shift 4
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    alive "$pid" || fail "$dir" "$what: pid $pid exited"
    [ $SECONDS -lt $deadline ] || fail "$dir" "$what: not within $seconds s"
    sleep 0.1
  done
}

# Two different free TCP ports of 127.0.0.1 (both bound while they are picked).
free_ports() {
  "$PY" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))'
}

node_idle() { [ "$(timeout 5 sinfo -h -o %T 2>/dev/null)" = idle ]; }
ctld_up() { timeout 5 scontrol ping 2>/dev/null | grep -q "is UP"; }

cmd_start() {
  local dir=$1
  [ ! -e "$dir/pids" ] || die "$dir/pids exists: a cluster was started there; stop it first"
  mkdir -p "$dir"/{munge,state,spool,log}
  dir=$(cd "$dir" && pwd)
  local me host ctld_port slurmd_port
  me=$(id -un); host=$(hostname -s)
  if [ -n "${CTLD_PORT:-}" ] && [ -n "${SLURMD_PORT:-}" ]; then
    ctld_port=$CTLD_PORT; slurmd_port=$SLURMD_PORT
  else
    read -r ctld_port slurmd_port < <(free_ports)
  fi
  : > "$dir/pids"

  # 1. munge: a private key (0400, of the user munged runs as), a private socket; the socket's
  #    directory must be o+x (pitfall 1). --force: munged refuses root without it on some builds.
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 755 "$dir/munge"; chmod 400 "$dir/munge/munge.key"
  local sock=$dir/munge/munge.sock
  spawn "$dir" "$dir/log/munged.err" munged -F --force --key-file="$dir/munge/munge.key" --socket="$sock" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"
  wait_for "$dir" "$START_TIMEOUT" munged "$SPAWNED" test -S "$sock"
  munge -S "$sock" -n | unmunge -S "$sock" > "$dir/log/munge-check.txt" 2>&1 \
    || fail "$dir" "munge/unmunge through $sock failed"

  # 2. slurm.conf; clients and daemons find it through SLURM_CONF. Everything under DIR (pitfall 5);
  #    no cgroups (pitfall 3); node name = hostname -s at 127.0.0.1 (pitfall 4).
  # The memory jobs may ask for (sbatch --mem): what the machine has, less room for the daemons.
  local memory_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 - 512 ))
  cat > "$dir/slurm.conf" <<CONF
ClusterName=rehost
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$me
SlurmdUser=$me
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
# a job starts at once, not batch_sched_delay (3 s) later (pitfall 6)
SchedulerParameters=batch_sched_delay=0
# finished array tasks stay in scontrol for 10 minutes: the tests read their state and exit code there
MinJobAge=600
# a cancelled job's processes get KILL 2 s after TERM (default 30 s), so stop is quick
KillWait=2
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$memory_mb State=UNKNOWN
PartitionName=batch Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$dir/slurm.conf

  # 3. the daemons in the foreground (-D) of a detached process, so the recorded pid is the daemon.
  spawn "$dir" "$dir/log/slurmctld.out" slurmctld -D -i
  wait_for "$dir" "$START_TIMEOUT" slurmctld "$SPAWNED" ctld_up
  spawn "$dir" "$dir/log/slurmd.out" slurmd -D
  wait_for "$dir" "$START_TIMEOUT" "slurmd (node idle in sinfo)" "$SPAWNED" node_idle
  echo "SLURM_CONF=$dir/slurm.conf"
}

# Pids (not ours) left by the cluster in DIR: processes in the session of a daemon (argv), and
# slurmstepd and job processes whose environment names this cluster's SLURM_CONF (slurmstepd
# calls setsid, so it has a session of its own; it inherits slurmd's environment).
leftovers() {
  local dir=$1; shift
  "$PY" - "$dir/slurm.conf" "$$" "$@" <<'PY'
import os, sys
conf, me, sessions = sys.argv[1], int(sys.argv[2]), {int(p) for p in sys.argv[3:]}
needle = b"SLURM_CONF=" + conf.encode()
for entry in os.listdir("/proc"):
    if not entry.isdigit() or int(entry) in (me, os.getpid()):
        continue
    pid = int(entry)
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        if int(fields[3]) in sessions:
            print(pid); continue
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            stepd = f.read().startswith(b"slurmstepd")
        if needle in env and (stepd or any(v.startswith(b"SLURM_JOB_ID=") for v in env)):
            print(pid)
    except (OSError, IndexError, ValueError):
        pass
PY
}

# kill_and_wait PID...: TERM each, wait up to 10 s for each, then KILL.
kill_and_wait() {
  local pid deadline
  for pid in "$@"; do
    alive "$pid" || continue
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if alive "$pid"; then
      echo "slurm-local: pid $pid still alive after 10 s, sending KILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    fi
  done
}

cmd_stop() {
  local dir=$1 pid pids=() watchdogs=() left=()
  [ -f "$dir/pids" ] || return 0
  while read -r pid; do [ -n "$pid" ] && pids+=("$pid"); done < "$dir/pids"
  if [ -f "$dir/watchdog.pids" ]; then
    while read -r pid; do [ -n "$pid" ] && watchdogs+=("$pid"); done < "$dir/watchdog.pids"
  fi
  # Watchdogs first, so none races the stop.
  kill_and_wait "${watchdogs[@]:+${watchdogs[@]}}"
  # Jobs still queued or running are cancelled while slurmctld can still do it.
  if [ -f "$dir/slurm.conf" ] && [ ${#pids[@]} -ge 2 ] && alive "${pids[1]}"; then
    SLURM_CONF=$dir/slurm.conf timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(SLURM_CONF=$dir/slurm.conf timeout 5 squeue -h 2>/dev/null)" ] && break; sleep 0.1
    done
  fi
  # Daemons newest first: slurmd, slurmctld, munged.
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill_and_wait "${pids[i]}"; done
  # Whatever a job or slurmstepd left behind in the daemons' sessions or with this cluster's SLURM_CONF.
  mapfile -t left < <(leftovers "$dir" "${pids[@]:+${pids[@]}}")
  if [ ${#left[@]} -gt 0 ]; then
    # orphans of a cluster that is gone (slurmstepd ignores TERM): KILL at once
    echo "slurm-local: killing leftover processes ${left[*]}" >&2
    kill -KILL "${left[@]}" 2>/dev/null || true
    for pid in "${left[@]}"; do
      for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    done
  fi
  for pid in "${pids[@]:+${pids[@]}}" "${watchdogs[@]:+${watchdogs[@]}}"; do
    alive "$pid" && die "pid $pid is still alive"
  done
  rm -f "$dir/watchdog.pids"
  mv "$dir/pids" "$dir/pids.stopped"
}

case "${1:-}" in
  start) [ $# -eq 2 ] || die "usage: $0 start DIR"; cmd_start "$2" ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; cmd_stop "$2" ;;
  *) die "usage: $0 start DIR | stop DIR" ;;
esac
