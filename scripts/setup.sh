#!/usr/bin/env bash
# One-command setup of worldfm_ros on a machine without ROS 2 (Debian 12 / Ubuntu, Python 3.11).
#
#   bash scripts/setup.sh            # then: .venv/bin/worldfm-demo, .venv/bin/python -m pytest -q test
#
# What it does (every step is skipped or a fast no-op when already done, so re-running is safe):
#   1. checks for cmake (>= 3.20), a C/C++ compiler, Python headers and the venv module;
#      installs the missing ones with apt-get when it can (root or sudo), else says what to run;
#   2. creates .venv/ in the checkout (reused when present);
#   3. pip-installs requirements-dev.txt: ROS 2 Kilted wheels from PyPI, the interface
#      generators, torch==2.13.0, numpy, OpenCV, ... and pytest (the one list of requirements
#      is requirements.txt, which requirements-dev.txt includes);
#   4. pip-installs this package in editable mode; its build step generates the msg/ and srv/
#      types with CMake (see setup.py).
#
# Environment: PYTHON (interpreter for the venv, default python3), WORLDFM_VENV (default
# <checkout>/.venv). pip's own settings apply as usual, e.g. on a machine where PyPI's torch
# wheel would pull CUDA packages you do not want:
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${WORLDFM_VENV:-$ROOT/.venv}"
START=$SECONDS

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# --- 1. system prerequisites -------------------------------------------------------------
command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3.11 (apt-get install python3)"
"$PYTHON" - <<'EOF' || die "Python >= 3.10 is needed (the ROS 2 wheels are built for CPython 3.11)"
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
EOF

missing_apt=()
cmake_ok() {
    command -v cmake >/dev/null || return 1
    local version
    version="$(cmake --version | head -n1 | awk '{print $3}')"
    [ "$(printf '%s\n3.20\n' "$version" | sort -V | head -n1)" = "3.20" ]
}
cmake_ok || missing_apt+=(cmake)
command -v cc >/dev/null && command -v c++ >/dev/null || missing_apt+=(build-essential)
"$PYTHON" - <<'EOF' || missing_apt+=(python3-dev)
import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)
EOF
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -c "import ensurepip, venv" 2>/dev/null || missing_apt+=(python3-venv)
fi

if [ ${#missing_apt[@]} -gt 0 ]; then
    log "missing system packages: ${missing_apt[*]}"
    if command -v apt-get >/dev/null; then
        SUDO=""
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null || die "run as root or install: apt-get install ${missing_apt[*]}"
            SUDO="sudo"
        fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing_apt[@]}"
        cmake_ok || die "cmake >= 3.20 is needed (found: $(cmake --version 2>/dev/null | head -n1))"
    else
        die "install these first: ${missing_apt[*]} (cmake >= 3.20, a C/C++ compiler, Python headers, venv)"
    fi
fi

# --- 2. virtual environment --------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
else
    log "reusing $VENV"
fi
PIP=("$VENV/bin/python" -m pip)

# PEP 660 editable installs need pip >= 21.3.
"$VENV/bin/python" - <<'EOF' || "${PIP[@]}" install -q --upgrade "pip>=23"
import sys
from importlib.metadata import version
major, minor = (int(part) for part in version("pip").split(".")[:2])
sys.exit(0 if (major, minor) >= (21, 3) else 1)
EOF

# --- 3. requirements ---------------------------------------------------------------------
log "installing requirements-dev.txt (ROS 2 wheels, generators, torch==2.13.0, ...)"
"${PIP[@]}" install -q -r "$ROOT/requirements-dev.txt"

# --- 4. the package (generates msg/ and srv/ with CMake) ---------------------------------
log "installing worldfm_ros (editable) and generating its ROS interfaces"
# No build isolation: the build step must see this venv's generators and setuptools anyway,
# and it keeps the install working offline once the requirements are in place.
"${PIP[@]}" install -q --no-build-isolation -e "$ROOT"

"$VENV/bin/python" - <<'EOF' || die "the installed package does not import; see the messages above"
from worldfm_ros.msg import KeyframeInfo, WorldStatus  # noqa: F401
from worldfm_ros.srv import RenderView, SaveWorld, SetPose  # noqa: F401
import rclpy  # noqa: F401
EOF
log "done in $((SECONDS - START)) s. Try: $VENV/bin/worldfm-demo   Tests: $VENV/bin/python -m pytest -q test"
