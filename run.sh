#!/usr/bin/env bash
# Set up VAEReg Studio on a fresh Debian/Ubuntu machine (once) and run it.
#
#   ./run.sh app [FILE]        launch the app (bundled default model and sample)
#   ./run.sh test [PYTEST...]  run the whole test suite (GUI tests under Xvfb, the engine's doctests too)
#
# Idempotent: system packages are installed only when missing, and the
# virtual environment (.venv) is reused until pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")"

SYSTEM_PACKAGES=(xvfb xauth libegl1 libgl1 libglib2.0-0 libdbus-1-3 libfontconfig1 libxkbcommon-x11-0
                 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0 libxcb-render-util0
                 libxcb-image0 libxcb-xinerama0 libxcb-xkb1 libxrender1 libxi6 python3-venv)
PYTHON=${PYTHON:-python3}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else echo "run.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
    fi
}

install_system_packages() {
    command -v dpkg >/dev/null || return 0   # not Debian: the packages are the user's to provide
    missing=()
    for p in "${SYSTEM_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "run.sh: installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

setup_venv() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "run.sh: Python >= 3.10 needed" >&2; exit 1; }
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    local stamp=.venv/.vaereg-installed want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "run.sh: installing Python packages into .venv (first run takes a few minutes)"
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e ".[gui,test]"
        echo "$want" >"$stamp"
    fi
}

command=${1:-}
shift || true
case "$command" in
    app)
        install_system_packages
        setup_venv
        if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
            echo "run.sh: no display found; starting the app on a virtual screen (xvfb-run)" >&2
            exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/vaereg-studio "$@"
        fi
        exec .venv/bin/vaereg-studio "$@"
        ;;
    test)
        install_system_packages
        setup_venv
        set +e
        .venv/bin/python -m pytest "$@"
        status=$?
        set -e
        # pytest's exit 5 means no test ran: a broken suite, not a pass.
        [ $status -eq 5 ] && echo "run.sh: no tests were collected" >&2
        exit $status
        ;;
    *)
        sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
