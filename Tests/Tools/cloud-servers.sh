#!/usr/bin/env bash
# Real cloud servers on 127.0.0.1 for the upload-adapter tests (Tests/CloudTests): moto (S3, EBS
# direct, EC2, IAM) in signature-checking mode, OpenStack Glance 33 under gunicorn (sqlite + file
# store, "trusted headers" or Keystone flavour) and Keystone 30. Recipes and gotchas:
# /work/shared/CLOUD-SERVERS-FACTS.md (moto / Glance / Keystone), checked on Debian 12.
#
#   cloud-servers.sh install                       pinned venvs in $REHOST_CLOUD_VENVS
#   cloud-servers.sh start-moto DIR PORT           -> DIR/moto.env, DIR/moto.pid, DIR/moto.log
#   cloud-servers.sh start-keystone DIR PORT [GLANCE_URL]
#                                                  -> DIR/clouds.yaml, DIR/keystone.env, DIR/keystone.pid
#   cloud-servers.sh start-glance DIR PORT [KEYSTONE_URL]
#                                                  -> DIR/glance.pid, DIR/glance/ (conf, sqlite, store, logs)
#   cloud-servers.sh stop DIR                      TERM every DIR/*.pid, KILL after 10 s
#
# Every server binds 127.0.0.1 only and is stopped by its pid, never by name. OS_<GROUP>__<OPTION>
# variables in the environment (e.g. OS_DEFAULT__IMAGE_SIZE_CAP) reach Glance through oslo.config.
set -euo pipefail

VENVS=${REHOST_CLOUD_VENVS:-/var/cache/rehost/cloud-venvs}
PY=${REHOST_CLOUD_PYTHON:-/usr/bin/python3}
MOTO_PINS=("moto[server]==5.2.*" "boto3")
OPENSTACK_PINS=("glance==33.*" "keystone==30.*" "gunicorn==27.*")
MOTO_VENV=$VENVS/moto
OS_VENV=$VENVS/openstack

die() { echo "cloud-servers: $*" >&2; exit 1; }
log_tail() { [ -f "$1" ] && { echo "--- last lines of $1:" >&2; tail -n 40 "$1" >&2; }; return 0; }

# install_venv DIR PINS...: a venv made with $PY, skipped when DIR/.rehost-stamp names the same pins.
install_venv() {
  local dir=$1; shift
  local stamp="pins: $* python: $("$PY" -c 'import sys; print(sys.version.split()[0])')"
  if [ -f "$dir/.rehost-stamp" ] && [ "$(cat "$dir/.rehost-stamp")" = "$stamp" ]; then
    echo "cloud-servers: $dir is up to date"; return 0
  fi
  echo "cloud-servers: installing $* into $dir"
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  "$PY" -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "$@"
  echo "$stamp" > "$dir/.rehost-stamp"
}

cmd_install() {
  install_venv "$MOTO_VENV" "${MOTO_PINS[@]}"
  install_venv "$OS_VENV" "${OPENSTACK_PINS[@]}"
}

# spawn NAME DIR LOG CMD...: CMD in the background (its own session, stdin closed), pid in
# DIR/NAME.pid. With REHOST_CLOUD_OWNER_PID set, a watchdog (DIR/NAME.watchdog.pid) stops the
# server when that process (the test run) is gone, so a crashed test leaves nothing behind.
spawn() {
  local name=$1 dir=$2 logfile=$3; shift 3
  setsid "$@" < /dev/null >> "$logfile" 2>&1 &
  local pid=$!
  echo "$pid" > "$dir/$name.pid"
  if [ -n "${REHOST_CLOUD_OWNER_PID:-}" ]; then
    local owner=$REHOST_CLOUD_OWNER_PID
    setsid bash -c 'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 2; done
      kill -TERM "$2" 2>/dev/null; sleep 5; kill -KILL "$2" 2>/dev/null; exit 0' watchdog "$owner" "$pid" \
      < /dev/null > /dev/null 2>&1 &
    echo "$!" > "$dir/$name.watchdog.pid"
  fi
}

# wait_http NAME DIR URL SECONDS LOG: until URL answers (any status), failing loudly if the
# server's process died or the time ran out.
wait_http() {
  local name=$1 dir=$2 url=$3 seconds=$4 logfile=$5 pid
  pid=$(cat "$dir/$name.pid")
  local deadline=$((SECONDS + seconds))
  until curl -s -m 2 -o /dev/null "$url"; do
    if ! kill -0 "$pid" 2>/dev/null; then log_tail "$logfile"; die "$name (pid $pid) exited before answering on $url"; fi
    if [ $SECONDS -ge $deadline ]; then log_tail "$logfile"; die "$name (pid $pid) did not answer on $url within $seconds s"; fi
    sleep 0.2
  done
}

need_venv() { [ -x "$1/bin/python" ] || die "$1 missing: run $0 install first"; }

cmd_start_moto() {
  local dir=$1 port=$2
  need_venv "$MOTO_VENV"
  mkdir -p "$dir"
  local endpoint=http://127.0.0.1:$port
  # Auth mode: the first 3 requests are free (the IAM bootstrap below), every later one must carry
  # a valid SigV4 signature of the key made here.
  spawn moto "$dir" "$dir/moto.log" env INITIAL_NO_AUTH_ACTION_COUNT=3 \
    "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port"
  # /moto-api/ is not counted as an action, so waiting on it spends none of the 3 free calls.
  wait_http moto "$dir" "$endpoint/moto-api/" 60 "$dir/moto.log"
  "$MOTO_VENV/bin/python" - "$endpoint" "$dir/moto.env" <<'PY' || { log_tail "$dir/moto.log"; die "moto IAM bootstrap failed"; }
import json, sys, boto3
endpoint, out = sys.argv[1], sys.argv[2]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="rehost-ci")
iam.put_user_policy(UserName="rehost-ci", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="rehost-ci")["AccessKey"]
with open(out + ".tmp", "w") as f:
    f.write(f"AWS_ACCESS_KEY_ID={key['AccessKeyId']}\nAWS_SECRET_ACCESS_KEY={key['SecretAccessKey']}\n"
            f"AWS_ENDPOINT_URL={endpoint}\nAWS_REGION=us-east-1\n")
PY
  mv "$dir/moto.env.tmp" "$dir/moto.env"
  echo "moto up on $endpoint (pid $(cat "$dir/moto.pid")); credentials in $dir/moto.env"
}

cmd_stop() {
  local dir=$1 f pid
  [ -d "$dir" ] || return 0
  # Watchdogs first, so none of them races the stop below.
  for f in "$dir"/*.watchdog.pid "$dir"/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        echo "cloud-servers: $f: pid $pid still alive after 10 s, sending KILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
    rm -f "$f"
  done
}

case "${1:-}" in
  install) cmd_install ;;
  start-moto) [ $# -eq 3 ] || die "usage: $0 start-moto DIR PORT"; cmd_start_moto "$2" "$3" ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; cmd_stop "$2" ;;
  *) die "usage: $0 install|start-moto|start-glance|start-keystone|stop ..." ;;
esac
