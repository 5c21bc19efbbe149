#!/usr/bin/env bash
# The pinned venv of the offline Kubernetes manifest check (Tests/Tools/k8s-validate.py): the
# `kubernetes` Python client (its API models are the schema) and PyYAML. No API server can run on
# this machine (/work/shared/BATCH-AND-UPLOAD-FACTS.md, 1.2), so this check is all there is.
#
#   k8s-venv.sh install      $REHOST_CLOUD_VENVS/k8s, skipped when its stamp names the same pins
#   k8s-venv.sh python       prints the venv's python (for scripts and tests)
set -euo pipefail

VENVS=${REHOST_CLOUD_VENVS:-/var/cache/rehost/cloud-venvs}
PY=${REHOST_CLOUD_PYTHON:-/usr/bin/python3}
K8S_PINS=("kubernetes==37.0.2" "PyYAML==6.0.3")
K8S_VENV=$VENVS/k8s

die() { echo "k8s-venv: $*" >&2; exit 1; }

# The same stamp scheme as cloud-servers.sh's install_venv: rebuilt only when the pins change.
cmd_install() {
  "$PY" -c 'import ensurepip, venv' 2>/dev/null \
    || die "$PY cannot make venvs: install Debian's python3-venv (scripts/install-deps.sh does)"
  local stamp="pins: ${K8S_PINS[*]} python: $("$PY" -c 'import sys; print(sys.version.split()[0])')"
  if [ -f "$K8S_VENV/.rehost-stamp" ] && [ "$(cat "$K8S_VENV/.rehost-stamp")" = "$stamp" ]; then
    echo "k8s-venv: $K8S_VENV is up to date"; return 0
  fi
  echo "k8s-venv: installing ${K8S_PINS[*]} into $K8S_VENV"
  rm -rf "$K8S_VENV"
  mkdir -p "$(dirname "$K8S_VENV")"
  "$PY" -m venv "$K8S_VENV"
  "$K8S_VENV/bin/pip" install -q --disable-pip-version-check "${K8S_PINS[@]}"
  "$K8S_VENV/bin/python" -c 'import kubernetes, yaml' || die "the new venv cannot import kubernetes and yaml"
  echo "$stamp" > "$K8S_VENV/.rehost-stamp"
}

case "${1:-}" in
  install) cmd_install ;;
  python) echo "$K8S_VENV/bin/python" ;;
  *) die "usage: $0 install|python" ;;
esac
