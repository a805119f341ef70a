#!/usr/bin/env bash
# Copy the engines' own kernel source files out of their released wheels into .upstream/ (git-ignored,
# never committed), so `hotfuse bench --upstream NAME=PATH` can time them side by side on a GPU box
# that has no engine installed. These files are the engines' code under their licenses; they are only
# loaded at bench time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
wheels="${HOTFUSE_WHEELS:-$HOME/.cache/hotfuse/wheels}"
mkdir -p "$wheels" .upstream
fetch() { ls "$wheels"/$1-$2-*.whl >/dev/null 2>&1 || pip download -q --no-deps "$1==$2" -d "$wheels"; ls "$wheels"/$1-$2-*.whl | head -1; }
sg="$(fetch sglang 0.5.23)"
unzip -p "$sg" sglang/kernels/ops/sampling/temperature_softmax.py > .upstream/sglang_temperature_softmax.py
echo "vendored into .upstream/: $(ls .upstream | tr '\n' ' ')"
