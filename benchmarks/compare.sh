#!/bin/sh
# rlmx side by side with the official rlms library, interleaved (issue 10, item 6).
#
#   sh benchmarks/compare.sh [--setup-rlms] [--quick] [--write-doc] [compare.py options...]
#
# --setup-rlms  create .bench/rlms-venv with PyPI rlms==0.1.3 (git-ignored), then run.
# RLMS_PYTHON   the rlms venv's python, instead of .bench/rlms-venv/bin/python.
# Without the official library, only rlmx's side runs and the table says so.
# Default run about 5 min on 2 cores; --quick about 1 min. See benchmarks/compare.py.
set -eu
cd "$(dirname "$0")/.."
setup=0
for a in "$@"; do [ "$a" = "--setup-rlms" ] && setup=1; done
if [ "$setup" = 1 ]; then
    if [ ! -x .bench/rlms-venv/bin/python ]; then
        python3 -m venv .bench/rlms-venv
    fi
    .bench/rlms-venv/bin/pip install --quiet rlms==0.1.3
fi
args=""
for a in "$@"; do [ "$a" = "--setup-rlms" ] || args="$args $a"; done
# bytecode on: each benchmark process would otherwise recompile everything
# shellcheck disable=SC2086
exec env -u PYTHONDONTWRITEBYTECODE .venv/bin/python benchmarks/compare.py $args
