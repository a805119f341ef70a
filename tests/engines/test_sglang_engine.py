"""hotfuse inside the real SGLang 0.5.23 engine on CPU (CI platform plugin, tiny config-only Mixtral)."""

import pytest

from helpers import report_with_title, run_cases

pytestmark = pytest.mark.engine_sglang

TOPK_TARGET = "sglang.srt.layers.moe.topk._biased_grouped_topk_postprocess"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_cases(tmp_path_factory, "sglang", "mixtral-tiny", {
        "on": ({"HOTFUSE": "1"}, {}),
        "off": ({}, {}),
        "fault": ({"HOTFUSE": "1", "HOTFUSE_TEST_FAULTS": "install:topk_postprocess"}, {}),
    })


def test_plugin_runs_in_the_scheduler_process(runs):
    tokens, reports, _ = runs["on"]
    assert len(tokens) == 2 and all(len(t) == 6 for t in tokens)
    scheduler = report_with_title(reports, "sglang::scheduler")
    assert scheduler["engine_version"] == "0.5.23"
    assert scheduler["patches"] == [
        {"fusion": "sampler", "target": "sglang.srt.layers.sampler.Sampler.forward", "via": "sglang HookRegistry"},
        {"fusion": "gemma4_router", "target": "sglang.srt.models.gemma4_causal.Gemma4MoE.__init__",
         "via": "sglang HookRegistry"},
        {"fusion": "topk_postprocess", "target": TOPK_TARGET, "via": "sglang HookRegistry"},
        {"fusion": "spec_gather", "target": "sglang.kernels.ops.speculative.gather_spec_extras.gather_spec_extras",
         "via": "sglang HookRegistry"},
    ] + [{"fusion": "qk_norm_fp8", "target": target, "via": "sglang HookRegistry"} for target in (
        "sglang.srt.models.utils._reshape_for_qk_norm", "sglang.kernels.ops.layernorm.norm.can_use_fused_inplace_qknorm",
        "sglang.kernels.ops.quantization.fp8_kernel.static_quant_fp8",
        "sglang.kernels.ops.quantization.fp8_kernel.scaled_fp8_quant")]
    states = {n: f["state"] for n, f in scheduler["fusions"].items()}
    assert states["topk_postprocess"] == "active"
    # greedy decoding keeps SGLang's own sampler: counted as such, never fused
    assert scheduler["counters"]["sampler"]["fused"] == 0
    assert scheduler["counters"]["sampler"]["fallbacks"].get("greedy batch", 0) >= 6
    assert states["spec_gather"] == "active" and states["gemma4_router"] == "active"
    # SGLang calls its top-k post-process helper only on CUDA (0.5.11-0.5.22 do no post-process on CPU;
    # 0.5.23 maps and masks inline there), so a CPU engine never reaches the adapter: nothing counted.
    assert scheduler["counters"]["topk_postprocess"] == {"fused": 0, "fallbacks": {}}


def test_unset_hotfuse_stays_inert_in_the_scheduler(runs):
    tokens, reports, log = runs["off"]
    assert len(tokens) == 2
    scheduler = report_with_title(reports, "sglang::scheduler")
    for report in reports:
        assert report["flags"]["inert"] and report["patches"] == []
    assert {f["state"] for f in scheduler["fusions"].values()} == {"inert"}
    assert "[hotfuse" not in log


def test_generation_is_identical_with_and_without_the_plugin(runs):
    assert runs["on"][0] == runs["off"][0]


def test_failing_adapter_leaves_the_engine_generating_stock(runs):
    tokens, reports, log = runs["fault"]
    assert tokens == runs["off"][0]
    scheduler = report_with_title(reports, "sglang::scheduler")
    assert scheduler["patches"] == []
    assert scheduler["fusions"]["topk_postprocess"]["state"] == "error"
    assert "InjectedFault" in scheduler["error"]
    assert "every patch was reverted" in log


@pytest.fixture(scope="module")
def sampler_runs(tmp_path_factory):
    """Sampling with temperature > 0 (simple case and top-p), kernels through the Triton interpreter."""
    fused = {"HOTFUSE": "sampler", "TRITON_INTERPRET": "1"}
    disabled = {"HOTFUSE": "1", "HOTFUSE_DISABLE": "sampler", "TRITON_INTERPRET": "1"}
    return run_cases(tmp_path_factory, "sglang", "mixtral-tiny", {
        "sample": (fused, {"temperature": 0.8}),
        "qwen3_defaults": (fused, {"temperature": 0.6, "top_k": 20, "top_p": 0.95}),
        "llama_defaults": (fused, {"temperature": 0.6, "top_p": 0.9}),
        "min_p_and_greedy": (fused, {"temperature": 0.7, "min_p": 0.05, "greedy_first": True}),
        "disabled": (disabled, {"temperature": 0.8}),
    })


@pytest.mark.parametrize("label, kernel", [("sample", "temperature_sample"), ("qwen3_defaults", "filtered_sample"),
                                           ("llama_defaults", "filtered_sample"),
                                           ("min_p_and_greedy", "filtered_sample")])
def test_sampling_goes_through_the_fused_kernels_in_the_scheduler(sampler_runs, label, kernel):
    """Qwen3's and Llama's default sampling parameters, and a batch mixing a greedy request (top-k 1 in SGLang) with
    min-p ones, all draw in hotfuse's kernel: fused on every step, no fallback, and that kernel self-checked."""
    tokens, reports, _ = sampler_runs[label]
    scheduler = report_with_title(reports, "sglang::scheduler")
    assert scheduler["fusions"]["sampler"]["state"] == "active"
    counters = scheduler["counters"]["sampler"]
    # (a step may hold the greedy request alone: an all-greedy batch keeps SGLang's argmax)
    allowed = {"greedy batch"} if label == "min_p_and_greedy" else set()
    assert counters["fused"] >= 6 and set(counters["fallbacks"]) <= allowed, counters
    assert kernel in scheduler["safety"]["sampler"]["self_check"], scheduler["safety"]["sampler"]
    assert all(len(t) == 6 and all(0 <= tok < 512 for tok in t) for t in tokens)


def test_disabled_sampler_runs_sglangs_own_path(sampler_runs):
    tokens, reports, _ = sampler_runs["disabled"]
    scheduler = report_with_title(reports, "sglang::scheduler")
    assert scheduler["fusions"]["sampler"]["state"] == "reference"
    assert scheduler["counters"]["sampler"] == {"fused": 0, "fallbacks": {}}
    assert all(len(t) == 6 for t in tokens)
