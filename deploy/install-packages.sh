#!/usr/bin/env bash
# Installs the Debian packages given when a program of theirs is missing.
# As root it uses apt-get; otherwise it says what to run and fails.
set -euo pipefail
declare -A provides=(
  [mosquitto]=/usr/sbin/mosquitto
  [mosquitto-clients]=/usr/bin/mosquitto_pub
  [victoria-metrics]=/usr/bin/victoria-metrics
  [mbpoll]=/usr/bin/mbpoll
  [socat]=/usr/bin/socat
  [chromium]=/usr/bin/chromium
  # Chinese glyphs for the dashboard's zh-CN screenshots (headless chromium has none).
  [fonts-wqy-microhei]=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc
  [prometheus]=/usr/bin/promtool
)
missing=()
for package in "$@"; do
  [ -x "${provides[$package]:-/nonexistent}" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them with:  sudo apt-get install -y ${missing[*]}  (then run make again)" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the system broker (and Prometheus) on install; the project runs its own
# on other ports, and needs only promtool of the latter.
for service in mosquitto prometheus; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl stop "$service" || true
  fi
done
