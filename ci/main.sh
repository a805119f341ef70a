#!/usr/bin/env bash
# The main job (README): build/refresh the engine venvs, then show what hotfuse does inside each real
# engine install: `hotfuse status` with HOTFUSE unset, with every fusion on, and with one disabled.
# Status exit codes are shown, not fatal: `pending` fusions make `HOTFUSE=1 hotfuse status` exit 1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venvs="${HOTFUSE_VENVS:-$HOME/.cache/hotfuse/venvs}"
bash "$here/setup_envs.sh"
export PYTHONWARNINGS=ignore
for engine in vllm sglang; do
  for flags in "" "HOTFUSE=1" "HOTFUSE=1 HOTFUSE_DISABLE=topk_postprocess"; do
    echo
    echo "================ $engine venv: ${flags:-HOTFUSE unset} ================"
    rc=0
    env -u HOTFUSE -u HOTFUSE_DISABLE $flags "$venvs/$engine/bin/hotfuse" status --engine "$engine" 2>/dev/null || rc=$?
    echo "(exit code $rc)"
  done
done
