#!/usr/bin/env bash
# Installs the GreenGauge agent from this offline bundle, without network: a virtual
# environment at PREFIX with every wheel from wheels/ (pip's own included, so the
# system needs no python3-venv or pip), and the systemd unit. Made by
# deploy/offline/make-bundle.sh; deploy/GATEWAY.md says what comes before and after.
set -euo pipefail

prog=install.sh
usage() {
  cat <<'EOF'
usage: sudo ./install.sh [--prefix DIR] [--python PY] [--unit-dir DIR | --no-systemd]

  --prefix DIR     where the agent goes (default /opt/greengauge: the systemd unit's path)
  --python PY      the gateway's Python 3 (default python3); must be the bundle's version
  --unit-dir DIR   where energy-agent.service is copied (default /etc/systemd/system)
  --no-systemd     do not copy the unit

Run again with a newer bundle to upgrade; the config and the outbox are not touched.
EOF
}

die() {
  echo "$prog: $*" >&2
  exit 2
}

need_value() {
  [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#--}" = "$2" ] || die "$1 needs a value (see --help)"
}

prefix=/opt/greengauge
python=python3
unit_dir=/etc/systemd/system
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --prefix)
      need_value "$@"
      prefix=$2
      shift 2
      ;;
    --python)
      need_value "$@"
      python=$2
      shift 2
      ;;
    --unit-dir)
      need_value "$@"
      unit_dir=$2
      shift 2
      ;;
    --no-systemd)
      unit_dir=""
      shift
      ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
[ -f "$here/BUNDLE" ] && [ -d "$here/wheels" ] || die "$here is not an unpacked GreenGauge bundle"
# shellcheck source=/dev/null
. "$here/BUNDLE"
command -v "$python" >/dev/null || die "$python not found: the bundle is for Python $PYTHON_VERSION"
have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$have" = "$PYTHON_VERSION" ] ||
  die "this bundle is for Python $PYTHON_VERSION, $python is $have: build one with --python-version $have"
(cd "$here" && sha256sum --quiet --check SHA256SUMS) ||
  die "wheels damaged or missing (SHA256SUMS does not match): copy the bundle again"

# A bundle made before EXTRAS existed has none.
extras=${EXTRAS:-}
[[ "$extras" =~ ^[a-z0-9,]*$ ]] || die "BUNDLE: EXTRAS=$extras is not a list of extras"
requirement="greengauge==$GREENGAUGE_VERSION"
[ -z "$extras" ] || requirement="greengauge[$extras]==$GREENGAUGE_VERSION"

pip_wheel=$(find "$here/wheels" -name 'pip-*.whl' | head -n 1)
[ -n "$pip_wheel" ] || die "no pip wheel in $here/wheels"
echo "installing greengauge $GREENGAUGE_VERSION${extras:+ with $extras} ($PLATFORM) into $prefix"
# --without-pip: Debian's Python lacks ensurepip unless python3-venv is installed; pip
# runs from its wheel instead and installs itself into the environment.
"$python" -m venv --without-pip "$prefix"
"$prefix/bin/python" "$pip_wheel/pip" install --quiet --no-index --find-links "$here/wheels" \
  --upgrade pip "$requirement" || {
  echo "$prog: pip could not install from $here/wheels (is the bundle for this platform," \
    "$PLATFORM?)" >&2
  exit 1
}
"$prefix/bin/energy-agent" profiles >/dev/null || {
  echo "$prog: $prefix/bin/energy-agent does not run" >&2
  exit 1
}

if [ -n "$unit_dir" ]; then
  install -d "$unit_dir"
  install -m 0644 "$here/systemd/energy-agent.service" "$unit_dir/energy-agent.service"
  if [ "$unit_dir" = /etc/systemd/system ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
  fi
  echo "systemd unit: $unit_dir/energy-agent.service"
fi
echo "installed: $prefix/bin/energy-agent"
[[ ",$extras," != *,uvloop,* ]] || echo "with uvloop: \`event_loop: uvloop\` in agent.yaml runs the agent on it"
echo "next: the greengauge user, /etc/greengauge/agent.yaml and agent.env, then"
echo "  energy-agent check and energy-agent test (deploy/GATEWAY.md, sections 2 to 5)"
