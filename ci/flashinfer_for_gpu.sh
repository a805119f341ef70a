#!/usr/bin/env bash
# Build .whl/flashinfer for the GPU machine with FlashInfer's `sampling` module prebuilt for sm_90a, so nothing
# JIT-compiles there (a fresh device machine would spend minutes of a 10-minute call on it). Runs here, on a CPU
# machine with nvcc (CUDA 13) and the package index; about 2 minutes on 2 cores. ci/trim_flashinfer_wheel.py's
# docstring explains each step; this script is those steps in order:
#   1. download flashinfer-python (pinned there) and trim it (no prebuilt module yet);
#   2. install that trimmed copy, its tvm-ffi for this Python and the small packages its import needs into a
#      scratch folder, with the cuRAND headers of nvidia-curand and a stand-in libcuda.so for the link;
#   3. build the `sampling` module for sm_90a with FlashInfer's own JIT builder;
#   4. trim again with --aot-dir, which adds the built module to the wheel.
# Usage: [PYTHON=python-with-torch] bash ci/flashinfer_for_gpu.sh [OUT_DIR (default .whl/flashinfer)] [SCRATCH]
# The `topk` module (top_k_top_p_sampling_from_* with an int top_k) is not built: 20+ minutes here, and the bench
# passes per-row top-k tensors, which need `sampling` only.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/.whl/flashinfer}"
scratch="${2:-$(mktemp -d)}"
# a Python with torch (FlashInfer's JIT builder imports it): PYTHON, else the project's vllm venv (ci/setup_envs.sh)
python="${PYTHON:-${HOTFUSE_VENVS:-$HOME/.cache/hotfuse/venvs}/vllm/bin/python}"
"$python" -c "import torch" 2>/dev/null || { echo "$python has no torch: set PYTHON, or run ci/setup_envs.sh" >&2; exit 2; }
command -v nvcc >/dev/null || { echo "nvcc not found: the module build needs the CUDA toolkit" >&2; exit 2; }
# the toolkit root: CUDA_HOME, else nvcc's own (/usr/local/bin/nvcc on the CPU machines here is a wrapper outside it)
cuda_home="${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")}"
[[ -f "$cuda_home/include/cuda_runtime.h" ]] || cuda_home=/usr/local/cuda
mkdir -p "$scratch"/{wheels,site,curand,stub,workspace}
"$python" "$root/ci/trim_flashinfer_wheel.py" "$out" --download-dir "$scratch/wheels"
pip_target() { "$python" -m pip install -q --disable-pip-version-check --no-deps --target "$scratch/site" "$@"; }
pip_target "$out"/flashinfer_python-*.whl
# the tvm-ffi release carried for the GPU machine's Python, for this one
tvm_ffi="$(basename "$(ls "$out"/apache_tvm_ffi-*.whl)" | cut -d- -f2)"
pip_target "apache-tvm-ffi==$tvm_ffi" nvidia-ml-py einops tabulate ninja
"$python" -m pip download -q --disable-pip-version-check --no-deps nvidia-curand==10.4.0.35 -d "$scratch/wheels"
unzip -q -o "$scratch"/wheels/nvidia_curand-*.whl 'nvidia/cu13/include/*' -d "$scratch/curand"
# the module is not linked against libcuda in the end; the link step only asks for the file
echo 'void hotfuse_stub(void) {}' | gcc -shared -x c - -o "$scratch/stub/libcuda.so"
FLASHINFER_CUDA_ARCH_LIST=9.0a FLASHINFER_WORKSPACE_BASE="$scratch/workspace" \
CUDA_HOME="$cuda_home" \
FLASHINFER_EXTRA_CUDAFLAGS="-isystem $scratch/curand/nvidia/cu13/include" FLASHINFER_EXTRA_LDFLAGS="-L$scratch/stub" \
PYTHONPATH="$scratch/site" PATH="$scratch/site/bin:$PATH" \
  "$python" -c "from flashinfer.jit import build_jit_specs; from flashinfer.jit.sampling import gen_sampling_module; \
build_jit_specs([gen_sampling_module()])"
cached="$(dirname "$(find "$scratch/workspace" -name sampling.so -path '*/90a/*' | head -1)")"
[[ -n "$cached" && "$cached" != "." ]] || { echo "the sampling module was not built" >&2; exit 1; }
"$python" "$root/ci/trim_flashinfer_wheel.py" "$out" --download-dir "$scratch/wheels" --aot-dir "$(dirname "$cached")"
