#!/usr/bin/env bash
# Run on the GPU device machine (no engine, no network there): the GPU test suite and `hotfuse bench`.
# hotfuse is put on PYTHONPATH through a copy laid out as the installed package would be.
# Usage: bash ci/gpu_run.sh OUT_DIR [bench args...]
set -uo pipefail
out="${1:?out dir}"; shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shim="$(mktemp -d)"
cp -r "$root/plugin" "$shim/hotfuse" && cp -r "$root/patches" "$shim/hotfuse/patches"
export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
cd "$root"
if [[ -n "${HOTFUSE_GPU_SCRIPT:-}" ]]; then  # an experiment instead of the suite: HOTFUSE_GPU_SCRIPT="tools/x.py"
  python3 $HOTFUSE_GPU_SCRIPT "$out" "$@"; exit $?
fi
# HOTFUSE_GPU_TESTS: what pytest runs, as shell words (default: the whole suite), so that the suite can be split over
# calls of ten minutes, e.g. "tests/gpu/test_filtered_sampling_gpu.py -k 'kept_sets and dtype0'";
# HOTFUSE_GPU_BENCH=0: no bench after it
eval "tests=(${HOTFUSE_GPU_TESTS:-tests/gpu})"
python3 -m pytest "${tests[@]}" -m gpu -q -p no:cacheprovider -o addopts="" \
  --junitxml="$out/gpu-tests.xml" 2>&1 | tee "$out/gpu-tests.log"
tests_rc=${PIPESTATUS[0]}
if [[ "${HOTFUSE_GPU_BENCH:-1}" == 0 ]]; then echo "gpu tests rc=$tests_rc"; exit $tests_rc; fi
upstream=()
[[ -f .upstream/sglang_temperature_softmax.py ]] && upstream+=(--upstream sglang_sampler=.upstream/sglang_temperature_softmax.py)
[[ -f .upstream/sglang_gemma4_routing.py ]] && upstream+=(--upstream sglang_gemma4=.upstream/sglang_gemma4_routing.py)
[[ -f .upstream/sglang_gather_spec_extras.py ]] && upstream+=(--upstream sglang_spec_gather=.upstream/sglang_gather_spec_extras.py)
[[ -f .upstream/sglang_static_quant_fp8.py ]] && upstream+=(--upstream sglang_fp8_quant=.upstream/sglang_static_quant_fp8.py)
[[ -f .upstream/vllm_gemma4_routing.py ]] && upstream+=(--upstream vllm_gemma4=.upstream/vllm_gemma4_routing.py)
[[ -f .upstream/vllm_topk_topp.py ]] && upstream+=(--upstream vllm_sampling=.upstream)  # ci/vendor_vllm_sampling.py
python3 -m hotfuse.cli bench --out "$out" "${upstream[@]}" "$@" 2>&1 | tee "$out/bench.log" | tail -n 60
bench_rc=${PIPESTATUS[0]}
echo "gpu tests rc=$tests_rc bench rc=$bench_rc"
exit $(( tests_rc || bench_rc ))
