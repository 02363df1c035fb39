#!/usr/bin/env bash
# Builds an offline install bundle of the GreenGauge agent, for a gateway without internet:
# the project's wheel and the wheels of the agent's dependencies (not the collector's: no
# `collector` extra) for the gateway's platform and Python, pip's own wheel, install.sh,
# the systemd unit and the example configs, as one .tar.gz. Run it on a connected machine (any platform) from a checkout; copy the file to
# the gateway and run install.sh there (deploy/GATEWAY.md, "Offline install").
set -euo pipefail

prog=make-bundle.sh
usage() {
  cat <<'EOF'
usage: deploy/offline/make-bundle.sh [--platform TAG]... [--python-version X.Y] [--out FILE]
                                     [--python PY] [--find-links DIR]... [--no-index]
                                     [--with-uvloop]

Builds greengauge-offline-VERSION-PLATFORM-pyXY.tar.gz (or FILE) in the current directory.

  --platform TAG        the gateway's wheel platform; default: this machine's. Examples:
                          manylinux_2_36_aarch64   Raspberry Pi OS 12 / Debian 12, 64-bit ARM
                          manylinux_2_31_x86_64    Ubuntu 20.04 and newer, x86-64
                        manylinux_2_N (N = the gateway's glibc: `ldd --version` there) also
                        takes wheels built for older glibc. Repeatable. 32-bit ARM (armv7l)
                        needs --find-links with a PyYAML wheel (the index had none for it).
  --python-version X.Y  the gateway's Python (`python3 -V` there); default: PY's.
  --out FILE            the bundle to write (must end in .tar.gz).
  --python PY           the Python whose pip builds the bundle; default: python3.
  --find-links DIR      also take wheels from DIR (repeatable).
  --no-index            no package index: every wheel from --find-links and pip's configured
                        find-links (a machine with a wheelhouse but no network).
  --with-uvloop         also uvloop, for the agent's `event_loop: uvloop` (less CPU a request,
                        ~2.5 MiB more memory; wheels for x86_64 and aarch64). The bundle's
                        name ends in -uvloop.

Every dependency must exist as a wheel for the platform (--only-binary=:all:): nothing is
compiled on the gateway. Exit status: 0 built, 1 pip failed, 2 bad usage.
EOF
}

die() {
  echo "$prog: $*" >&2
  exit 2
}

need_value() {
  [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#--}" = "$2" ] || die "$1 needs a value (see --help)"
}

platforms=()
find_links=()
python_version=""
out=""
python=python3
no_index=0
with_uvloop=0
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --platform)
      need_value "$@"
      [[ "$2" =~ ^[a-z0-9_]+$ ]] || die "--platform $2: give a wheel platform tag such as manylinux_2_36_aarch64"
      platforms+=("$2")
      shift 2
      ;;
    --python-version)
      need_value "$@"
      [[ "$2" =~ ^3\.[0-9]+$ ]] || die "--python-version $2: give major.minor, e.g. 3.11"
      python_version=$2
      shift 2
      ;;
    --out)
      need_value "$@"
      [[ "$2" == *.tar.gz ]] || die "--out $2: the bundle is a .tar.gz"
      out=$2
      shift 2
      ;;
    --python)
      need_value "$@"
      python=$2
      shift 2
      ;;
    --find-links)
      need_value "$@"
      [ -d "$2" ] || die "--find-links $2: no such directory"
      find_links+=("$(cd "$2" && pwd)")
      shift 2
      ;;
    --no-index)
      no_index=1
      shift
      ;;
    --with-uvloop)
      with_uvloop=1
      shift
      ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

root=$(cd "$(dirname "$0")/../.." && pwd)
[ -f "$root/pyproject.toml" ] && [ -d "$root/agent" ] || die "$root is not a GreenGauge checkout"
command -v "$python" >/dev/null || die "--python $python: not found"
"$python" -m pip --version >/dev/null 2>&1 || die "$python has no pip (Debian: apt-get install python3-pip)"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/pyproject.toml")
[ -n "$version" ] || die "no version in $root/pyproject.toml"
[ -n "$python_version" ] || python_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# pip matches platform tags exactly: manylinux_2_N also means every manylinux_2_M, M < N,
# down to 2_17 (manylinux2014, the oldest tag current wheels carry).
pip_platforms=()
for tag in "${platforms[@]}"; do
  if [[ "$tag" =~ ^manylinux_2_([0-9]+)_(.+)$ ]]; then
    glibc=${BASH_REMATCH[1]}
    arch=${BASH_REMATCH[2]}
    [ "$glibc" -ge 17 ] || die "--platform $tag: glibc 2.$glibc is older than any wheel's (2.17)"
    for ((minor = glibc; minor >= 17; minor--)); do
      pip_platforms+=(--platform "manylinux_2_${minor}_${arch}")
    done
    pip_platforms+=(--platform "manylinux2014_${arch}")
  else
    pip_platforms+=(--platform "$tag")
  fi
done
if [ ${#platforms[@]} -gt 0 ]; then
  platform_name=${platforms[0]}
else
  platform_name=$("$python" -c 'import sysconfig; print(sysconfig.get_platform().replace("-", "_").replace(".", "_"))')
fi

index=()
[ "$no_index" = 0 ] || index+=(--no-index)
for dir in "${find_links[@]}"; do index+=(--find-links "$dir"); done

name="greengauge-offline-$version-$platform_name-py${python_version/./}"
extras=""
if [ "$with_uvloop" = 1 ]; then
  extras=uvloop
  name="$name-uvloop"
fi
[ -n "$out" ] || out="$PWD/$name.tar.gz"
out_dir=$(dirname "$out")
[ -d "$out_dir" ] || die "--out $out: no such directory $out_dir"
out="$(cd "$out_dir" && pwd)/$(basename "$out")"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bundle="$work/$name"
mkdir -p "$bundle/wheels" "$work/src"

# Build from a copy of what the package is made of (as .dockerignore), so the checkout
# gets no build/ or egg-info, and no stray file of it goes into the wheel.
tar -C "$root" --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml README.md greengauge agent collector |
  tar -C "$work/src" -xf -
isolation=()
# A setuptools at hand that can build this (>= 68, with bdist_wheel) saves fetching one.
if "$python" - 2>/dev/null <<'EOF'; then isolation=(--no-build-isolation); fi
import sys
from importlib.util import find_spec

import setuptools

version = tuple(int(part) for part in setuptools.__version__.split(".")[:2])
wheels = find_spec("setuptools.command.bdist_wheel") or find_spec("wheel")
sys.exit(0 if version >= (68, 0) and wheels else 1)
EOF
echo "building the greengauge $version wheel"
"$python" -m pip wheel --quiet --no-deps "${isolation[@]}" "${index[@]}" \
  --wheel-dir "$bundle/wheels" "$work/src" || {
  echo "$prog: building the greengauge wheel failed; see pip's message above (with" \
    "--no-index, setuptools >= 68 and wheel must be installed or in --find-links)" >&2
  exit 1
}
project_wheel=$(find "$bundle/wheels" -name 'greengauge-*.whl' | head -n 1)
requirement=$project_wheel
[ -z "$extras" ] || requirement="$project_wheel[$extras]"

echo "fetching the wheels of its dependencies${extras:+ and $extras} for $platform_name, Python $python_version"
"$python" -m pip download --quiet --only-binary=:all: --dest "$bundle/wheels" \
  --implementation cp --python-version "$python_version" "${pip_platforms[@]}" "${index[@]}" \
  "$requirement" pip || {
  echo "$prog: a dependency${extras:+ (or $extras)} has no wheel for $platform_name and Python" \
    "$python_version (or the package index is unreachable); see pip's message above" >&2
  exit 1
}

cp "$root/deploy/offline/install.sh" "$bundle/install.sh"
chmod 0755 "$bundle/install.sh"
mkdir -p "$bundle/systemd" "$bundle/configs"
cp "$root/deploy/systemd/energy-agent.service" "$bundle/systemd/"
cp "$root"/configs/agent*.example.yaml "$bundle/configs/"
cp "$root/deploy/GATEWAY.md" "$bundle/"
cat >"$bundle/BUNDLE" <<EOF
GREENGAUGE_VERSION=$version
PLATFORM=$platform_name
PYTHON_VERSION=$python_version
EXTRAS=$extras
EOF
(cd "$bundle" && find wheels -type f -name '*.whl' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)

tar -C "$work" -czf "$out" "$name"
count=$(find "$bundle/wheels" -name '*.whl' | wc -l)
echo "wrote $out ($(du -h "$out" | cut -f1), $count wheels)"
echo "on the gateway: tar -xzf $(basename "$out") && sudo ./$name/install.sh"
