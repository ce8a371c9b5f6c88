#!/usr/bin/env bash
# Runs the test suite on a Debian machine, fresh or not: installs the Debian packages the
# tests need when they are missing (as root, or through sudo), makes the virtualenv .venv,
# installs the project with its test extra into it, and runs pytest there with the
# arguments given (scripts/test.sh tests/test_deploy.py -x).
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

packages=()
if ! command -v python3 >/dev/null 2>&1; then
    packages+=(python3 python3-venv)
# Debian's python3 can make a virtualenv with pip only once python3-venv is installed.
elif ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    packages+=(python3-venv)
fi
# The tests publish with the ffmpeg command line and check media with ffprobe.
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
    packages+=(ffmpeg)
fi
# The multistream tests forward to nginx-rtmp (bench/nginx_peer.py finds it there).
if ! { command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]]; } ||
    [[ ! -f /usr/lib/nginx/modules/ngx_rtmp_module.so ]]; then
    packages+=(nginx-light libnginx-mod-rtmp)
fi
# tests/test_deploy.py checks the unit files in deploy/ with systemd-analyze.
if ! command -v systemd-analyze >/dev/null 2>&1; then
    packages+=(systemd)
fi
# The operator console's tests drive a headless Chromium with its WebDriver.
if ! command -v chromium >/dev/null 2>&1; then
    packages+=(chromium)
fi
if ! command -v chromedriver >/dev/null 2>&1; then
    packages+=(chromium-driver)
fi

if ((${#packages[@]} > 0)); then
    as_root=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            as_root=(sudo)
        else
            echo "scripts/test.sh: the tests need Debian's ${packages[*]}, which are missing." >&2
            echo "Run this script as root (or where sudo works), or first, as root:" >&2
            echo "    apt-get install ${packages[*]}" >&2
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "scripts/test.sh: no apt-get here: install ${packages[*]} (Debian's names)" \
            "with this system's package manager, then run this again." >&2
        exit 1
    fi
    echo "scripts/test.sh: installing ${packages[*]}" >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${packages[@]}"
fi

python3 -m venv .venv
.venv/bin/pip install -e '.[test]'
exec .venv/bin/python -m pytest "$@"
