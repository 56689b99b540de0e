#!/usr/bin/env bash
# Build VAEReg Studio as a self-contained Linux app folder and run its self-test.
#
#   installer/build.sh [--model FILE] [--no-test]
#
#   --model FILE  model for the bundle's self-test (default: the bundled
#                 model that resources/models/DEFAULT names, else default.pt; the self-test
#                 fails without one)
#   --no-test     build only
#
# Result: installer/dist/vaereg-studio/ (start installer/dist/vaereg-studio/vaereg-studio).
# The build venv (installer/.venv-build) is made once and reused until pyproject.toml,
# this script or the torch choice changes. Environment:
#   PYTHON           interpreter for the build venv (default python3; >= 3.10, shared libpython)
#   TORCH_SPEC       torch requirement (default: a CPU-only torch wheel that pip's find-links
#                    offer, else plain "torch", which on Linux is the CUDA build: several GB)
#   TORCH_INDEX_URL  package index to take torch from, e.g. PyTorch's CPU-only wheel index
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${BUILD_VENV:-installer/.venv-build}
DIST=installer/dist
PYTHON=${PYTHON:-python3}
MODEL=""
TEST=1
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL=$(realpath "$2"); shift 2 ;;
        --no-test) TEST=0; shift ;;
        *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
say() { echo "build.sh: $*" >&2; }
seconds() { echo $(( $(date +%s) - $1 )); }
start=$(date +%s)

# A CPU-only torch wheel among pip's find-links (local wheel folders), as "torch==VERSION".
local_cpu_torch() {
    local tag links dir whl
    tag=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    links="${PIP_FIND_LINKS:-} $("$PYTHON" -m pip config get global.find-links 2>/dev/null || true)"
    for dir in $links; do
        dir=${dir#file://}
        for whl in "$dir"/torch-*+cpu-"$tag"-"$tag"-*"$(uname -m)".whl; do
            [ -f "$whl" ] && { basename "$whl" | cut -d- -f2 | sed 's/^/torch==/'; return; }
        done
    done
}

torch_spec=${TORCH_SPEC:-$(local_cpu_torch)}
torch_spec=${torch_spec:-torch}
want=$(cat pyproject.toml installer/build.sh | sha256sum | cut -d' ' -f1)-$torch_spec-${TORCH_INDEX_URL:-}
stamp=$VENV/.vaereg-build
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "setting up the build venv $VENV (torch: $torch_spec)"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "$torch_spec" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
    # Keep that torch: torchvision (a dependency, not bundled) must not pull another build.
    "$VENV/bin/python" -c 'import torch; print(f"torch=={torch.__version__}")' >"$VENV/torch-constraint.txt" 2>/dev/null
    "$VENV/bin/python" -m pip install -q -c "$VENV/torch-constraint.txt" ".[gui,installer]"
    echo "$want" >"$stamp"
fi
cuda=$("$VENV/bin/python" -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null)
[ -n "$cuda" ] && say "warning: torch is a CUDA build ($cuda): the bundle will carry the CUDA libraries (GB); set TORCH_SPEC or TORCH_INDEX_URL for a CPU-only torch"
venv_s=$(seconds "$start")

say "building with PyInstaller"
t=$(date +%s)
"$VENV/bin/python" -m PyInstaller --noconfirm --log-level WARN --distpath "$DIST" --workpath installer/build installer/vaereg-studio.spec
build_s=$(seconds "$t")
app=$DIST/vaereg-studio
size=$(du -sh "$app" | cut -f1)
say "built $app: $size, $(find "$app" -type f | wc -l) files (venv ${venv_s} s, PyInstaller ${build_s} s)"

[ $TEST -eq 1 ] || exit 0
args=(--self-test)
[ -n "$MODEL" ] && args+=(--model "$MODEL")
models=$app/_internal/resources/models
bundled=$models/$(cat "$models/DEFAULT" 2>/dev/null || echo default.pt)
if [ -z "$MODEL" ] && [ ! -f "$bundled" ]; then
    say "note: no bundled model ($bundled) and no --model: the self-test will say so"
fi
say "self-test: $app/vaereg-studio ${args[*]}"
t=$(date +%s)
cd /  # nothing from the source tree on the path or in the working folder
set +e
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    "$ROOT/$app/vaereg-studio" "${args[@]}"
else
    xvfb-run -a -s "-screen 0 1280x1024x24" "$ROOT/$app/vaereg-studio" "${args[@]}"
fi
status=$?
set -e
say "self-test exit status $status ($(seconds "$t") s); total $(seconds "$start") s; bundle $size"
exit $status
