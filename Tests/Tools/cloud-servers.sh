#!/usr/bin/env bash
# Real cloud servers on 127.0.0.1 for the upload-adapter tests (Tests/CloudTests): moto (S3, EBS
# direct, EC2, IAM) in signature-checking mode, OpenStack Glance 33 under gunicorn (sqlite + file
# store, "trusted headers" or Keystone flavour) and Keystone 30. Recipes and gotchas:
# /work/shared/CLOUD-SERVERS-FACTS.md (moto / Glance / Keystone), checked on Debian 12.
#
#   cloud-servers.sh install                       pinned venvs in $REHOST_CLOUD_VENVS
#   cloud-servers.sh start-moto DIR PORT           -> DIR/moto.env, DIR/moto.pid, DIR/moto.log
#   cloud-servers.sh moto-reset DIR                wipe moto's state; a new key in DIR/moto.env
#   cloud-servers.sh start-keystone DIR PORT [GLANCE_URL]
#                                                  -> DIR/clouds.yaml, DIR/keystone.env, DIR/keystone.pid
#   cloud-servers.sh start-glance DIR PORT [KEYSTONE_URL]
#                                                  -> DIR/glance.pid, DIR/glance/ (conf, sqlite, store, logs)
#   cloud-servers.sh start-fault-proxy DIR UPSTREAM_URL [RULES_JSON]
#                                                  -> DIR/fault-proxy.{pid,port,log} (see fault-proxy.py)
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
  "$PY" -c 'import ensurepip, venv' 2>/dev/null \
    || die "$PY cannot make venvs: install Debian's python3-venv (scripts/install-deps.sh does)"
  install_venv "$MOTO_VENV" "${MOTO_PINS[@]}"
  install_venv "$OS_VENV" "${OPENSTACK_PINS[@]}"
  make_templates
}

# detach and WATCHDOG
source "$(dirname "${BASH_SOURCE[0]}")/detached.sh"

# spawn NAME DIR LOG CMD...: CMD in the background (detached, stdin closed), pid in DIR/NAME.pid.
# With REHOST_CLOUD_OWNER_PID set, a watchdog (DIR/NAME.watchdog.pid) stops the server when that
# process (the test run) is gone, so a crashed test leaves nothing behind.
spawn() {
  local name=$1 dir=$2 logfile=$3; shift 3
  detach "$@" < /dev/null >> "$logfile" 2>&1 &
  local pid=$!
  echo "$pid" > "$dir/$name.pid"
  if [ -n "${REHOST_CLOUD_OWNER_PID:-}" ]; then
    detach "$PY" -c "$WATCHDOG" "$REHOST_CLOUD_OWNER_PID" "$pid" < /dev/null > /dev/null 2>&1 &
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

# moto_bootstrap DIR ENDPOINT: the IAM user rehost-ci with an allow-all policy and an access key,
# made with the 3 calls moto lets through unsigned; the key goes to DIR/moto.env.
moto_bootstrap() {
  local dir=$1 endpoint=$2
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
}

# moto-reset DIR: forget all of moto's state, then make a new IAM key (DIR/moto.env changes).
cmd_moto_reset() {
  local dir=$1 endpoint
  need_venv "$MOTO_VENV"
  endpoint=$(sed -n 's/^AWS_ENDPOINT_URL=//p' "$dir/moto.env")
  [ -n "$endpoint" ] || die "$dir/moto.env: no AWS_ENDPOINT_URL"
  curl -s -f -m 30 -o /dev/null -X POST "$endpoint/moto-api/reset" || die "POST $endpoint/moto-api/reset failed"
  # reset also drops the IAM user, and auth mode stays on: allow 3 unsigned calls again.
  curl -s -f -m 30 -o /dev/null -X POST -H "Content-Type: text/plain" --data 3 "$endpoint/moto-api/reset-auth" || die "POST $endpoint/moto-api/reset-auth failed"
  moto_bootstrap "$dir" "$endpoint"
}

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
  moto_bootstrap "$dir" "$endpoint"
  echo "moto up on $endpoint (pid $(cat "$dir/moto.pid")); credentials in $dir/moto.env"
}

# keystone_conf DIR: DIR/keystone.conf, everything (sqlite, keys, log) under DIR.
keystone_conf() {
  local k=$1
  mkdir -p "$k"/{fernet,cred}
  cat > "$k/keystone.conf" <<CONF
[DEFAULT]
log_file = $k/keystone.log
[database]
connection = sqlite:///$k/keystone.sqlite
[token]
provider = fernet
[fernet_tokens]
key_repository = $k/fernet
[fernet_receipts]
key_repository = $k/fernet
[credential]
key_repository = $k/cred
CONF
}

# keystone_bootstrap DIR URL: the database, fernet and credential keys, and the admin user,
# project, roles, region RegionOne and identity endpoints at URL.
keystone_bootstrap() {
  local k=$1 url=$2 me group
  me=$(id -un); group=$(id -gn)
  local km=("$OS_VENV/bin/keystone-manage" --config-file "$k/keystone.conf")
  {
    "${km[@]}" db_sync &&
    "${km[@]}" fernet_setup --keystone-user "$me" --keystone-group "$group" &&
    "${km[@]}" credential_setup --keystone-user "$me" --keystone-group "$group" &&
    "${km[@]}" bootstrap --bootstrap-password "$KEYSTONE_ADMIN_PASSWORD" --bootstrap-region-id RegionOne \
      --bootstrap-admin-url "$url/" --bootstrap-internal-url "$url/" --bootstrap-public-url "$url/"
  } > "$k/manage.log" 2>&1 || { log_tail "$k/manage.log"; die "keystone-manage failed"; }
}

# glance_db_sync CONF LOG
glance_db_sync() {
  "$OS_VENV/bin/glance-manage" --config-file "$1" db_sync > "$2" 2>&1 || { log_tail "$2"; die "glance-manage db_sync failed"; }
}

# The Glance database and the bootstrapped Keystone state, made once per venv so that each start
# copies them instead of spending seconds on db_sync and keystone-manage.
make_templates() {
  local t=$OS_VENV/templates
  [ -f "$t/.done" ] && return 0
  echo "cloud-servers: making the Glance and Keystone start-up templates in $t"
  rm -rf "$t"; mkdir -p "$t/glance"
  printf '[database]\nconnection = sqlite:///%s/glance.sqlite\n' "$t" > "$t/glance/glance-api.conf"
  glance_db_sync "$t/glance/glance-api.conf" "$t/glance/db_sync.log"
  keystone_conf "$t/keystone"
  keystone_bootstrap "$t/keystone" "http://127.0.0.1:1/v3"
  rm -rf "$t/glance"
  touch "$t/.done"
}

KEYSTONE_ADMIN_PASSWORD=password

cmd_start_glance() {
  local dir=$1 port=$2 keystone=${3:-}
  need_venv "$OS_VENV"
  local g=$dir/glance
  mkdir -p "$g"/{images,staging,tasks,lock}
  local flavor=trusted
  [ -n "$keystone" ] && flavor=keystone
  cat > "$g/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $port
workers = 1
enabled_backends = fs:file
enabled_import_methods = [glance-direct,web-download,copy-image]
log_file = $g/glance-api.log

[database]
connection = sqlite:///$g/glance.sqlite

[paste_deploy]
flavor = $flavor
config_file = $g/glance-api-paste.ini

[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $g/images/
[os_glance_staging_store]
filesystem_store_datadir = $g/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $g/tasks/
[oslo_concurrency]
lock_path = $g/lock
CONF
  if [ -n "$keystone" ]; then
    cat >> "$g/glance-api.conf" <<CONF
[keystone_authtoken]
www_authenticate_uri = $keystone
auth_url = $keystone
auth_type = password
user_domain_name = Default
project_domain_name = Default
project_name = admin
username = admin
password = $KEYSTONE_ADMIN_PASSWORD
CONF
  fi
  # The shipped paste file, plus a "trusted" pipeline: Glance's own context middleware without
  # keystonemiddleware, so the identity comes from X-Identity-Status / X-Project-Id / X-User-Id /
  # X-Roles headers, as it would behind authtoken.
  sed -e "s|^disable_by_file_path = .*|disable_by_file_path = $g/healthcheck_disable|" \
      -e '/^\[composite:api\]/,/^$/ s|^default = .*|&\ntrusted = cors http_proxy_to_wsgi versionnegotiation osprofiler context rootapp|' \
      "$OS_VENV/etc/glance/glance-api-paste.ini" > "$g/glance-api-paste.ini"
  cat >> "$g/glance-api-paste.ini" <<'INI'

[composite:glance-api-trusted]
paste.composite_factory = glance.api:root_app_factory
/: api
/healthcheck: healthcheck
INI
  # db_sync takes seconds and gives the same schema every time: `install` keeps one beside the venv.
  if [ -f "$OS_VENV/templates/glance.sqlite" ]; then
    cp "$OS_VENV/templates/glance.sqlite" "$g/glance.sqlite"
  else
    glance_db_sync "$g/glance-api.conf" "$g/db_sync.log"
  fi
  # glance-api as a program is gone: Glance runs as a WSGI app, reading OS_GLANCE_CONFIG_DIR.
  # --no-control-socket keeps gunicorn 27 from writing ~/.gunicorn/gunicorn.ctl.
  spawn glance "$dir" "$g/gunicorn.log" env OS_GLANCE_CONFIG_DIR="$g" \
    "$OS_VENV/bin/gunicorn" --no-control-socket --bind "127.0.0.1:$port" --workers 1 --threads 4 \
    --timeout 300 glance.wsgi.api:application
  wait_http glance "$dir" "http://127.0.0.1:$port/" 120 "$g/gunicorn.log"
  echo "glance ($flavor) up on http://127.0.0.1:$port (pid $(cat "$dir/glance.pid")); logs in $g"
}

cmd_start_keystone() {
  local dir=$1 port=$2 glance=${3:-}
  need_venv "$OS_VENV"
  local k=$dir/keystone url=http://127.0.0.1:$port/v3
  mkdir -p "$k"/{fernet,cred}
  keystone_conf "$k"
  # db_sync, key set-up and bootstrap take ~10 s: `install` keeps their result beside the venv
  # (made for another port; the set-up below points the identity endpoints at this one).
  if [ -f "$OS_VENV/templates/keystone/keystone.sqlite" ]; then
    cp "$OS_VENV/templates/keystone/keystone.sqlite" "$k/"
    cp -r --preserve=mode "$OS_VENV/templates/keystone/fernet/." "$k/fernet/"
    cp -r --preserve=mode "$OS_VENV/templates/keystone/cred/." "$k/cred/"
  else
    keystone_bootstrap "$k" "$url"
  fi
  # keystone's WSGI start parses sys.argv with oslo.config and dies on gunicorn's options.
  printf 'import sys\nsys.argv = sys.argv[:1]\nfrom keystone.wsgi.api import application  # noqa\n' > "$k/ks_wsgi.py"
  spawn keystone "$dir" "$k/gunicorn.log" env OS_KEYSTONE_CONFIG_FILES="$k/keystone.conf" \
    "$OS_VENV/bin/gunicorn" --no-control-socket --chdir "$k" --bind "127.0.0.1:$port" --workers 1 \
    --threads 4 --timeout 300 ks_wsgi:application
  wait_http keystone "$dir" "$url" 120 "$k/gunicorn.log"
  "$PY" - "$url" "$KEYSTONE_ADMIN_PASSWORD" "$glance" "$dir" <<'PY' || { log_tail "$k/keystone.log"; die "keystone set-up failed"; }
import json, sys, urllib.request
url, password, glance, out = sys.argv[1:5]

def call(method, path, body=None, token=None, expect=(200, 201, 204)):
    request = urllib.request.Request(url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(request, timeout=60) as response:
        if response.status not in expect:
            raise SystemExit(f"{method} {path}: {response.status}")
        text = response.read()
        return response.headers.get("X-Subject-Token"), (json.loads(text) if text else None)

def password_token(user, secret, project):
    return call("POST", "/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": secret}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}})

admin, _ = password_token("admin", password, "admin")
# A copied template was bootstrapped for another port: point the identity endpoints here.
_, services = call("GET", "/services?type=identity", token=admin)
for service in services["services"]:
    _, endpoints = call("GET", f"/endpoints?service_id={service['id']}", token=admin)
    for endpoint in endpoints["endpoints"]:
        if endpoint["url"] != url + "/":
            call("PATCH", f"/endpoints/{endpoint['id']}", {"endpoint": {"url": url + "/"}}, admin)
_, roles = call("GET", "/roles?name=member", token=admin)
member = roles["roles"][0]["id"]
_, project = call("POST", "/projects", {"project": {"name": "demo", "domain_id": "default"}}, admin)
demo_project = project["project"]["id"]
demo_password = "demo-password"
_, user = call("POST", "/users", {"user": {"name": "demo", "domain_id": "default", "password": demo_password,
                                           "default_project_id": demo_project}}, admin)
demo_user = user["user"]["id"]
call("PUT", f"/projects/{demo_project}/users/{demo_user}/roles/{member}", token=admin)
demo, _ = password_token("demo", demo_password, "demo")
secret = "rehost-appcred-secret"
_, cred = call("POST", f"/users/{demo_user}/application_credentials",
               {"application_credential": {"name": "rehost-ci", "secret": secret}}, demo)
cred_id = cred["application_credential"]["id"]
if glance:
    _, service = call("POST", "/services", {"service": {"type": "image", "name": "glance"}}, admin)
    for interface in ("public", "internal", "admin"):
        call("POST", "/endpoints", {"endpoint": {"service_id": service["service"]["id"], "interface": interface,
                                                 "url": glance, "region_id": "RegionOne"}}, admin)

with open(f"{out}/clouds.yaml", "w") as f:
    f.write(f"""clouds:
  test:
    auth:
      auth_url: {url}
      username: admin
      password: {password}
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
  test-appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: {url}
      application_credential_id: {cred_id}
      application_credential_secret: {secret}
    region_name: RegionOne
    identity_api_version: 3
""")
with open(f"{out}/keystone.env.tmp", "w") as f:
    f.write(f"KEYSTONE_AUTH_URL={url}\nKEYSTONE_ADMIN_USER=admin\nKEYSTONE_ADMIN_PASSWORD={password}\n"
            f"KEYSTONE_ADMIN_PROJECT=admin\nKEYSTONE_DEMO_USER=demo\nKEYSTONE_DEMO_USER_ID={demo_user}\n"
            f"KEYSTONE_DEMO_PASSWORD={demo_password}\nKEYSTONE_DEMO_PROJECT_ID={demo_project}\n"
            f"KEYSTONE_APPCRED_ID={cred_id}\nKEYSTONE_APPCRED_SECRET={secret}\n"
            f"KEYSTONE_IMAGE_URL={glance}\n")
PY
  mv "$dir/keystone.env.tmp" "$dir/keystone.env"
  echo "keystone up on $url (pid $(cat "$dir/keystone.pid")); $dir/clouds.yaml, $dir/keystone.env"
}

# start-fault-proxy DIR UPSTREAM_URL [RULES_JSON_FILE]: fault-proxy.py on a free port of 127.0.0.1;
# the port in DIR/fault-proxy.port, injected faults logged in DIR/fault-proxy.log.
cmd_start_fault_proxy() {
  local dir=$1 upstream=$2 rules=${3:-}
  mkdir -p "$dir"
  rm -f "$dir/fault-proxy.port"
  local args=(--upstream "$upstream" --port 0 --port-file "$dir/fault-proxy.port" --log "$dir/fault-proxy.log")
  [ -n "$rules" ] && args+=(--rules "$rules")
  spawn fault-proxy "$dir" "$dir/fault-proxy.out" "$PY" "$(dirname "$0")/fault-proxy.py" "${args[@]}"
  local pid deadline=$((SECONDS + 20))
  pid=$(cat "$dir/fault-proxy.pid")
  until [ -s "$dir/fault-proxy.port" ]; do
    kill -0 "$pid" 2>/dev/null || { log_tail "$dir/fault-proxy.out"; die "fault-proxy (pid $pid) exited"; }
    [ $SECONDS -lt $deadline ] || { log_tail "$dir/fault-proxy.out"; die "fault-proxy (pid $pid) wrote no port"; }
    sleep 0.05
  done
  echo "fault-proxy up on http://127.0.0.1:$(cat "$dir/fault-proxy.port") -> $upstream (pid $pid)"
}

# alive PID: the process exists and is not a zombie waiting for its parent (PID 1 here reaps
# orphans late, and kill -0 succeeds on a zombie).
alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

cmd_stop() {
  local dir=$1 f pid pids=() files=()
  [ -d "$dir" ] || return 0
  # Watchdogs first, so none of them races the stop; then TERM every server at once (gunicorn's
  # graceful stop takes seconds) and wait for each, with KILL for any still alive after 10 s.
  for f in "$dir"/*.watchdog.pid "$dir"/*.pid; do
    [ -f "$f" ] || continue
    case " ${files[*]:-} " in *" $f "*) continue ;; esac
    files+=("$f")
    pid=$(cat "$f")
    if [ -n "$pid" ] && alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + 10))
  for pid in "${pids[@]:+${pids[@]}}"; do
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if alive "$pid"; then
      echo "cloud-servers: pid $pid still alive after 10 s, sending KILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -f "${files[@]:+${files[@]}}"
}

case "${1:-}" in
  install) cmd_install ;;
  start-moto) [ $# -eq 3 ] || die "usage: $0 start-moto DIR PORT"; cmd_start_moto "$2" "$3" ;;
  start-glance) [ $# -ge 3 ] && [ $# -le 4 ] || die "usage: $0 start-glance DIR PORT [KEYSTONE_URL]"; cmd_start_glance "$2" "$3" "${4:-}" ;;
  start-keystone) [ $# -ge 3 ] && [ $# -le 4 ] || die "usage: $0 start-keystone DIR PORT [GLANCE_URL]"; cmd_start_keystone "$2" "$3" "${4:-}" ;;
  start-fault-proxy) [ $# -ge 3 ] && [ $# -le 4 ] || die "usage: $0 start-fault-proxy DIR UPSTREAM_URL [RULES_JSON]"; cmd_start_fault_proxy "$2" "$3" "${4:-}" ;;
  moto-reset) [ $# -eq 2 ] || die "usage: $0 moto-reset DIR"; cmd_moto_reset "$2" ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; cmd_stop "$2" ;;
  *) die "usage: $0 install|start-moto|moto-reset|start-glance|start-keystone|start-fault-proxy|stop ..." ;;
esac
