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
unzip -p "$sg" sglang/kernels/ops/moe/gemma4_routing.py > .upstream/sglang_gemma4_routing.py
unzip -p "$sg" sglang/kernels/ops/speculative/gather_spec_extras.py > .upstream/sglang_gather_spec_extras.py
# SGLang's static per-tensor FP8 quant kernel sits among many others in fp8_kernel.py: take that one function.
unzip -p "$sg" sglang/kernels/ops/quantization/fp8_kernel.py | python3 -c '
import ast, sys
src = sys.stdin.read()
keep = [n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == "_static_quant_fp8"]
assert len(keep) == 1
lines = src.splitlines()
n = keep[0]
start = min([n.lineno] + [d.lineno for d in n.decorator_list])
print("\n".join(["import triton", "import triton.language as tl", ""] + lines[start - 1:n.end_lineno]))
' > .upstream/sglang_static_quant_fp8.py
# vLLM's Gemma4 routing kernel (0.34: with the padding mask) sits inside its model file among engine imports: take the
# two functions only.
vl="$(fetch vllm 0.34.0)"
unzip -p "$vl" vllm/model_executor/models/gemma4.py | python3 -c '
import ast, sys
src = sys.stdin.read()
tree = ast.parse(src)
keep = [n for n in tree.body if isinstance(n, ast.FunctionDef)
        and n.name in ("_gemma4_routing_kernel", "gemma4_fused_routing_kernel_triton")]
assert len(keep) == 2, [n.name for n in keep]
lines = src.splitlines()
out = ["import torch", "import triton", "import triton.language as tl", ""]
for n in keep:
    start = min([n.lineno] + [d.lineno for d in n.decorator_list])
    out += lines[start - 1:n.end_lineno] + ["", ""]
print("\n".join(out))
' > .upstream/vllm_gemma4_routing.py
# vLLM's V2-runner sampling kernels (temperature, min-p, Triton top-k/top-p mask, Gumbel) and its torch sort path,
# for tools/filtered_sampling_baseline.py.
python3 ci/vendor_vllm_sampling.py "$vl" .upstream >/dev/null
echo "vendored into .upstream/: $(ls .upstream | tr '\n' ' ')"
