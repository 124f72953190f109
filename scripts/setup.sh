#!/usr/bin/env bash
# Idempotent set-up from nothing: Debian packages, the virtual environment, Python packages.
# Quick when already done: each step is skipped when its stamp or package is present.
# Usage: scripts/setup.sh [--test]   (--test adds what the test suite needs)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
with_test=0
[ "${1:-}" = "--test" ] && with_test=1

# Debian packages: PortAudio for sounddevice, espeak-ng as the always-there voice; the tests
# also need virtual audio devices (PulseAudio) and systemd-analyze.
apt_pkgs=(libportaudio2 espeak-ng)
if [ "$with_test" = 1 ]; then
    apt_pkgs+=(pulseaudio pulseaudio-utils libasound2-plugins alsa-utils systemd)
fi
missing=()
for pkg in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=""
for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        python=$(command -v "$candidate")
        break
    fi
done
[ -n "$python" ] || { echo "setup: Python 3.11 is required (tortoise-tts and its pinned transformers need it)" >&2; exit 1; }

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"

extras="piper"
[ "$with_test" = 1 ] && extras="piper,test"
stamp="$venv/.installed-$extras-$(cat "$root/pyproject.toml" "$root/scripts/setup.sh" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "setup: installing Python packages into $venv" >&2
    "$venv/bin/python" -m pip install -q --upgrade pip
    # torch first and pinned: any other torch spec downloads GBs of CUDA builds.
    "$venv/bin/python" -m pip install -q torch==2.13.0
    constraints=$(mktemp)
    echo "torch==2.13.0" >"$constraints"
    "$venv/bin/python" -m pip install -q -c "$constraints" -e "$root[$extras]"
    rm -f "$constraints" "$venv"/.installed-*
    touch "$stamp"
fi
