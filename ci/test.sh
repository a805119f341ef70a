#!/usr/bin/env bash
# The test command (README): build/refresh the engine venvs, then run the CPU suite in each.
#   vllm venv:   core tests + everything marked engine_vllm
#   sglang venv: everything marked engine_sglang
# GPU tests (marker `gpu`) never run here; they run on the device machine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venvs="${HOTFUSE_VENVS:-$HOME/.cache/hotfuse/venvs}"
bash "$here/setup_envs.sh"
cd "$root"
status=0
echo "[test] vllm venv: core + engine_vllm"
"$venvs/vllm/bin/python" -m pytest -p no:cacheprovider -m "not engine_sglang and not gpu" "$@" || status=$?
echo "[test] sglang venv: engine_sglang"
"$venvs/sglang/bin/python" -m pytest -p no:cacheprovider -m "engine_sglang and not gpu" "$@" || status=$?
exit $status
