"""Copy vLLM's own sampling kernels out of a vLLM wheel into .upstream/ (git-ignored), loadable without vLLM, so the
filtered-sampling bench (tools/filtered_sampling_baseline.py) can time vLLM's V2-runner path on the GPU machine.

Usage: python ci/vendor_vllm_sampling.py VLLM_WHEEL OUT_DIR   (ci/vendor_upstream.sh calls it)

Written, each a vLLM source file with only its imports of vLLM replaced:
- vllm_gumbel.py        vllm/v1/worker/gpu/sample/gumbel.py (temperature kernel, Gumbel-max sampler), with the one
                        helper it imports from spec_decode/draft_logits.py copied in;
- vllm_min_p.py         vllm/v1/worker/gpu/sample/min_p.py;
- vllm_topk_topp.py     vllm/v1/sample/ops/topk_topp_triton.py (the Triton top-k/top-p mask), plus the torch sort
                        path `apply_top_k_top_p_pytorch` / `apply_top_k_only` from topk_topp_sampler.py.
vLLM's launch helpers are replaced by the small stand-ins in SHIMS below (hotfuse's code): the dispatcher binds a
dispatch function's arguments to its kernel's parameters by vLLM's naming convention (`x` -> `x`, `x_ptr`, `X`,
`X_PTR`; `X_STRIDE_d` / `x_stride` from the bound tensor) and launches; the compile-time warm-up is left out.
"""

from __future__ import annotations

import ast
import sys
import zipfile
from pathlib import Path

TRITON = "import triton\nimport triton.language as tl\n"

SHIMS = '''
# --- stand-ins for vLLM's launch helpers (hotfuse, ci/vendor_vllm_sampling.py) -----------------------------------
import contextlib as _contextlib
import inspect as _inspect

import torch as _torch
import triton
import triton.language as tl

DispatchSpec = tuple


class _WarmupOnly:
    """vLLM's compile-time warm-up descriptions: only built by warm-up functions, which nothing here calls."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("vLLM's JIT warm-up is not vendored")


WarmupChoices = WarmupIntRange = TritonWarmupTensor = _WarmupOnly


def _when(condition):
    raise RuntimeError("vLLM's JIT warm-up is not vendored")


class _Platform:
    @staticmethod
    def is_cuda_alike():
        return True


current_platform = _Platform()
gpu_sync_allowed = _contextlib.nullcontext
next_power_of_2 = triton.next_power_of_2


def num_compute_units(device_index=None):
    index = _torch.cuda.current_device() if device_index is None else device_index
    return _torch.cuda.get_device_properties(index).multi_processor_count


def _kernel_parameter(kernel_args, name):
    for candidate in (name, f"{name}_ptr", name.upper(), f"{name}_ptr".upper()):
        if candidate in kernel_args:
            return candidate
    return None


def triton_kernel_dispatcher_with_warmup(*, warmup_inputs, kernel=None):
    def decorate(dispatch):
        signature = _inspect.signature(dispatch)
        kernel_args = tuple(kernel.arg_names)

        def launch(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            grid, launch_kwargs = dispatch(*args, **kwargs)[:2]
            launch_kwargs = dict(launch_kwargs)
            for name, value in bound.arguments.items():
                parameter = _kernel_parameter(kernel_args, name)
                if parameter is not None and parameter not in launch_kwargs:
                    launch_kwargs[parameter] = value
            for parameter in kernel_args:
                if parameter in launch_kwargs:
                    continue
                for marker in ("_STRIDE", "_stride"):
                    base, found, dim = parameter.rpartition(marker)
                    dim = dim.removeprefix("_")
                    if found and (not dim or dim.isdigit()):
                        pointer = f"{base}_PTR" if marker == "_STRIDE" else f"{base}_ptr"
                        source = base if base in launch_kwargs else pointer
                        if source in launch_kwargs:
                            launch_kwargs[parameter] = launch_kwargs[source].stride(int(dim or 0))
                        break
            return kernel[grid](**launch_kwargs)

        launch.__wrapped__ = dispatch
        return launch

    return decorate
# ------------------------------------------------------------------------------------------------------------------
'''


def _functions(source: str, names: set[str]) -> str:
    """The source of the top-level functions `names` (decorators included), in file order."""
    lines = source.splitlines()
    found = [node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef) and node.name in names]
    missing = names - {node.name for node in found}
    assert not missing, f"not in the source: {sorted(missing)}"
    out = []
    for node in found:
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        out += lines[start - 1:node.end_lineno] + ["", ""]
    return "\n".join(out)


def _replace_imports(source: str, replacements: dict[str, str]) -> str:
    """Each top-level `from vllm... import ...` statement (possibly spanning lines) swapped for replacements[module];
    any vLLM import left unreplaced is an error: the vendored file must not need vLLM."""
    lines = source.splitlines()
    tree = ast.parse(source)
    edits = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "vllm":
            assert node.module in replacements, f"unhandled vLLM import: {node.module}"
            edits.append((node.lineno, node.end_lineno, replacements[node.module]))
        elif isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] == "vllm" for a in node.names), "unhandled `import vllm`"
    for start, end, text in sorted(edits, reverse=True):
        lines[start - 1:end] = [text] if text else []
    return "\n".join(lines) + "\n"


def vendor(wheel: str, out_dir: str) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        read = lambda path: zf.read(path).decode()  # noqa: E731
        gumbel = read("vllm/v1/worker/gpu/sample/gumbel.py")
        draft_row = _functions(read("vllm/v1/worker/gpu/spec_decode/draft_logits.py"), {"draft_logits_row"})
        min_p = read("vllm/v1/worker/gpu/sample/min_p.py")
        topk_topp = read("vllm/v1/sample/ops/topk_topp_triton.py")
        sort_path = _functions(read("vllm/v1/sample/ops/topk_topp_sampler.py"),
                               {"apply_top_k_top_p_pytorch", "apply_top_k_only"})
    written = {
        "vllm_gumbel.py": _replace_imports(gumbel, {
            "vllm.triton_utils": TRITON,
            "vllm.v1.worker.gpu.spec_decode.draft_logits": "",
        }) + "\n\n" + draft_row,
        "vllm_min_p.py": _replace_imports(min_p, {"vllm.triton_utils": TRITON}),
        "vllm_topk_topp.py": _replace_imports(topk_topp, {
            "vllm.model_executor.warmup.jit_warmup": "",
            "vllm.model_executor.warmup.jit_warmup_triton_helper": "",
            "vllm.platforms": "",
            "vllm.triton_utils": SHIMS,
            "vllm.utils.gpu_sync_debug": "",
            "vllm.utils.math_utils": "",
            "vllm.utils.platform_utils": "",
        }) + "\n\n" + sort_path,
    }
    paths = []
    for name, text in written.items():
        compile(text, name, "exec")  # a vendored file that does not parse fails here, not on the GPU machine
        path = out / name
        path.write_text(f"# Vendored from {Path(wheel).name} by ci/vendor_vllm_sampling.py: vLLM's code under its "
                        f"license (Apache-2.0), imports of vLLM replaced.\n" + text)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written_path in vendor(sys.argv[1], sys.argv[2]):
        print(written_path)
