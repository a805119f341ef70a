"""SGLang adapters against the real installed SGLang modules and its real HookRegistry (in process)."""

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine_sglang

torch = pytest.importorskip("torch")


INSTALLED = []  # engine states this module's tests patched the real SGLang with


@pytest.fixture
def topk(fresh_hotfuse):
    """The real sglang topk module, with every hotfuse patch (and its HookRegistry hook) reverted afterwards."""
    import sglang.srt.layers.moe.topk as topk_module

    original = vars(topk_module)["_biased_grouped_topk_postprocess"]
    yield topk_module
    from hotfuse.patching import revert

    while INSTALLED:
        for patch in reversed(INSTALLED.pop().patches):
            revert(patch)
    assert topk_module._biased_grouped_topk_postprocess is original


def flags(**env):
    from hotfuse.flags import parse_flags

    return parse_flags(env)


def install(fl):
    from hotfuse.runtime import plan_engine

    state = plan_engine("sglang", fl, install=True)
    INSTALLED.append(state)
    return state


def calls(fusion):
    from hotfuse import counters

    return counters.snapshot()[fusion]


def test_topk_target_validates_against_installed_sglang(topk):
    from hotfuse.patches.sglang.topk_postprocess import POSTPROCESS
    from hotfuse.targets import validate

    v = validate(POSTPROCESS)
    assert v.ok, v.reason


def test_noop_fast_path_skips_the_compiled_helper(topk):
    original = topk._biased_grouped_topk_postprocess
    state = install(flags(HOTFUSE="topk_postprocess"))
    assert state.fusions["topk_postprocess"].state.value == "active"
    patched = topk._biased_grouped_topk_postprocess
    assert patched is not original and patched.__wrapped__ is original
    ids = torch.randint(0, 8, (5, 2), dtype=torch.int32)
    assert patched(ids, None, None) is ids
    assert calls("topk_postprocess")["fused"] == 1
    # padding only: hotfuse's kernel, into a new tensor; the input keeps its logical ids
    out = patched(ids, None, torch.tensor(3))
    assert out is not ids and (out[3:] == -1).all() and torch.equal(out[:3], ids[:3])
    assert calls("topk_postprocess") == {"fused": 2, "fallbacks": {}}


def dispatch_info(algorithm, table):
    from sglang.srt.eplb.expert_location_dispatch import ExpertLocationDispatchInfo

    experts = table.shape[0]
    return ExpertLocationDispatchInfo(
        ep_dispatch_algorithm=algorithm, partial_logical_to_rank_dispatch_physical_map=table,
        partial_logical_to_all_physical_map=table[:, None], partial_logical_to_all_physical_map_num_valid=torch.ones(
            experts, dtype=torch.int32), num_physical_experts=experts)


def test_static_eplb_map_and_padding_match_the_engine_helper(topk):
    original = topk._biased_grouped_topk_postprocess
    install(flags(HOTFUSE="topk_postprocess"))
    table = torch.randperm(16).to(torch.int32)
    ids = torch.randint(0, 16, (37, 4), dtype=torch.int32)
    info = dispatch_info("static", table)
    for n in (None, torch.tensor(0), torch.tensor(20), torch.tensor(37)):
        expected = original(ids.clone(), info, n)
        got = topk._biased_grouped_topk_postprocess(ids, info, n)
        assert torch.equal(got, expected)
    assert calls("topk_postprocess")["fused"] == 4


def test_dynamic_dispatch_keeps_the_engine_helper(topk):
    install(flags(HOTFUSE="topk_postprocess"))
    info = dispatch_info("dynamic", torch.arange(16, dtype=torch.int32))
    topk._biased_grouped_topk_postprocess(torch.randint(0, 16, (4, 2), dtype=torch.int32), info, None)
    assert calls("topk_postprocess")["fallbacks"] == {"dynamic dispatch: engine helper": 1}


def test_disabled_fusion_restores_reference_path(topk):
    state = install(flags(HOTFUSE="1", HOTFUSE_DISABLE="topk_postprocess"))
    assert state.fusions["topk_postprocess"].state.value == "reference"
    ids = torch.randint(0, 8, (4, 2), dtype=torch.int32)
    out = topk._biased_grouped_topk_postprocess(ids.clone(), None, torch.tensor(2))
    assert (out[2:] == -1).all() and torch.equal(out[:2], ids[:2])
    assert calls("topk_postprocess")["fused"] == 0
    assert list(calls("topk_postprocess")["fallbacks"]) == ["disabled: engine's unfused eager helpers"]


def test_revert_restores_the_engine_function(topk):
    from hotfuse.patching import revert

    original = topk._biased_grouped_topk_postprocess
    state = install(flags(HOTFUSE="topk_postprocess"))
    assert topk._biased_grouped_topk_postprocess is not original
    for patch in reversed(state.patches):
        revert(patch)
    INSTALLED.remove(state)
    assert topk._biased_grouped_topk_postprocess is original


def test_changed_engine_source_is_drift_left_untouched_and_reported(topk, monkeypatch, capsys):
    from hotfuse import cli
    from hotfuse.patches.sglang import topk_postprocess as adapter

    other_release = dataclasses.replace(adapter.POSTPROCESS, fingerprints={"feedfacecafebeef": "some release"})
    monkeypatch.setattr(adapter, "POSTPROCESS", other_release)
    original = topk._biased_grouped_topk_postprocess
    state = install(flags(HOTFUSE="topk_postprocess"))
    report = state.fusions["topk_postprocess"]
    assert report.state.value == "drift" and "matches no validated release" in report.reason
    assert topk._biased_grouped_topk_postprocess is original and state.patches == []

    monkeypatch.setenv("HOTFUSE", "topk_postprocess")
    code = cli.main(["status", "--json", "--engine", "sglang"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["engines"]["sglang"]["fusions"]["topk_postprocess"]["state"] == "drift"
    assert code == 1, "a requested fusion that drifted must fail `hotfuse status`"

    monkeypatch.setenv("HOTFUSE_ALLOW_DRIFT", "1")
    code = cli.main(["status", "--json", "--engine", "sglang"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["engines"]["sglang"]["fusions"]["topk_postprocess"]["state"] == "active"
    assert code == 0


# import overlays of other releases, installed into the venv by ci/setup_envs.sh (ci/*-overlay.txt)
OVERLAYS = {"0.5.12": Path(sys.prefix) / "overlay-sglang-0.5.12", "0.5.10.post1": Path(sys.prefix) / "overlay-sglang-0.5.10"}


def for_release(env, release):
    """Put the overlay of `release` first on PYTHONPATH when another release than the installed one is asked for.

    The CI CPU platform plugin is written against 0.5.23's platform classes; no engine runs here, so
    0.5.12 gets no platform selection (its module-level device checks fall back to CPU).
    """
    if release in OVERLAYS:
        assert OVERLAYS[release].is_dir(), f"run ci/setup_envs.sh: it installs the SGLang {release} overlay"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(OVERLAYS[release]), env.get("PYTHONPATH")]))
        env.pop("SGLANG_PLATFORM", None)
    return env


def status_of(tmp_path, release, *args, **flags):
    """`hotfuse status --engine sglang ARGS` in a fresh process with SGLang `release` installed: (exit code, stdout)."""
    import subprocess

    from helpers import clean_env

    env = for_release(clean_env(tmp_path, **flags), release)
    out = subprocess.run([sys.executable, "-m", "hotfuse.cli", "status", "--engine", "sglang", *args], env=env,
                         capture_output=True, text=True, timeout=300)
    return out.returncode, out.stdout


def test_status_with_a_release_without_plugin_framework_says_unsupported_and_fails(tmp_path):
    """SGLang 0.5.10 has no sglang.srt.plugins: hotfuse can never load there, so nothing may read `active`."""
    code, text = status_of(tmp_path, "0.5.10.post1", HOTFUSE="1")
    assert code == 1, text
    assert "sglang 0.5.10.post1" in text and "unsupported: no plugin entry point in this release" in text
    assert "active" not in text
    code, doc = status_of(tmp_path, "0.5.10.post1", "--json", HOTFUSE="1")
    fusions = json.loads(doc)["engines"]["sglang"]["fusions"]
    assert {f["state"] for f in fusions.values()} == {"unsupported"}
    code, text = status_of(tmp_path, "0.5.10.post1")  # nothing requested: nothing failed, the note still shows
    assert code == 0 and "unsupported: no plugin entry point" in text


def run_script(tmp_path, script, release, **flags):
    """Run one of the SGLang layer scripts in a fresh process for `release`; returns its JSON result line."""
    import subprocess

    from helpers import clean_env

    path = Path(__file__).resolve().parent / script
    env = for_release(clean_env(tmp_path, TRITON_INTERPRET="1", **flags), release)
    out = subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("HOTFUSE_") and "_RESULT " in ln)
    result = json.loads(line.split(" ", 1)[1])
    assert result["sglang_version"] == release
    return result


def run_gemma4_layer(tmp_path, release, **flags):
    """Build a real Gemma4MoE of SGLang `release` in a fresh process with the given hotfuse flags."""
    return run_script(tmp_path, "sglang_gemma4_layer.py", release, **flags)


RELEASES = pytest.mark.parametrize("release", ["0.5.23", "0.5.12"])


@RELEASES
def test_gemma4_layer_routes_through_the_fused_kernel(tmp_path, release):
    result = run_gemma4_layer(tmp_path, release, HOTFUSE="gemma4_router")
    assert result["routing_function"].endswith("hotfuse_gemma4_routing")
    assert result["counters"]["fused"] == 1 and result["counters"]["fallbacks"] == {}
    assert result["same_experts"] and result["max_weight_error"] <= 1e-6
    assert result["dtypes"] == ["torch.float32", "torch.int32"]
    assert result["tied_row"] == [0, 1, 2, 3], "ties go to the lowest expert ids"


@RELEASES
def test_gemma4_kill_switch_routes_through_the_torch_reference(tmp_path, release):
    result = run_gemma4_layer(tmp_path, release, HOTFUSE="1", HOTFUSE_DISABLE="gemma4_router")
    assert result["routing_function"].endswith("hotfuse_gemma4_routing")
    assert result["counters"] == {"fused": 0, "fallbacks": {"disabled: hotfuse torch reference": 1}}
    assert result["same_experts"] and result["max_weight_error"] == 0.0


@RELEASES
def test_gemma4_layer_is_untouched_without_hotfuse(tmp_path, release):
    result = run_gemma4_layer(tmp_path, release)
    assert result["routing_function"] == "Gemma4MoE.__init__.<locals>.routing_function"
    assert result["counters"] == {"fused": 0, "fallbacks": {}}
    # SGLang's own CPU path (torch.topk) agrees except on exact ties, where its pick is unspecified
    assert result["same_experts_untied"]


@RELEASES
def test_every_adapter_validates_against_the_real_release(tmp_path, release):
    """`hotfuse status` imports the real modules of that release and validates every target (no drift)."""
    code, out = status_of(tmp_path, release, "--json", HOTFUSE="1")
    doc = json.loads(out)["engines"]["sglang"]
    assert doc["engine_version"] == release
    states = {name: f["state"] for name, f in doc["fusions"].items()}
    assert states["sampler"] == states["gemma4_router"] == states["topk_postprocess"] == "active", states
    assert states["spec_gather"] == "active", states
    # 0.5.12's own inductor gate still works there: hotfuse leaves it in charge
    assert states["qk_norm_fp8"] == ("native" if release == "0.5.12" else "active"), states
    assert "drift" not in states.values()


# ---- spec_gather: the real FutureMap of 0.5.12 (hotfuse's one-launch gather) and 0.5.23 (native) ----

def run_future_map(tmp_path, release, **flags):
    return run_script(tmp_path, "sglang_future_map.py", release, **flags)


def test_future_map_0512_gathers_the_draft_extras_in_one_launch(tmp_path):
    result = run_future_map(tmp_path, "0.5.12", HOTFUSE="spec_gather")
    assert result["resolver_hooked"] and result["error"] is None
    assert result["fields"] == ["topk_p", "topk_index", "bonus_tokens", "new_seq_lens", "hidden_states"]
    assert all(result["equal"].values()), result["equal"]
    assert result["dtypes_kept"]
    assert result["counters"] == {"fused": 1, "fallbacks": {}}, "all five buffers in one gather_rows call"


@pytest.mark.parametrize("flags", [{}, {"HOTFUSE": "1", "HOTFUSE_DISABLE": "spec_gather"}])
def test_future_map_0512_runs_the_engine_code_when_disabled_or_off(tmp_path, flags):
    result = run_future_map(tmp_path, "0.5.12", **flags)
    assert not result["resolver_hooked"]
    # SGLang's own resolve_future ran: it calls record_stream, which CPU tensors reject
    assert result["error"].startswith("resolve_future: indices.record_stream("), result["error"]
    assert result["counters"] == {"fused": 0, "fallbacks": {}}


def test_future_map_0523_gathers_through_hotfuse(tmp_path):
    result = run_future_map(tmp_path, "0.5.23", HOTFUSE="spec_gather")
    assert result["gather_spec_extras"] == "spec_gather", "overlap_utils' copy of gather_spec_extras is rebound"
    assert all(result["equal"].values()) and result["dtypes_kept"]
    assert result["counters"] == {"fused": 1, "fallbacks": {}}


def test_future_map_0523_is_sglangs_own_without_hotfuse(tmp_path):
    result = run_future_map(tmp_path, "0.5.23")
    assert result["gather_spec_extras"] == "sglang" and not result["resolver_hooked"]
    assert all(result["equal"].values()) and result["dtypes_kept"]
    assert result["counters"] == {"fused": 0, "fallbacks": {}}


def test_future_map_0523_kill_switch_replaces_the_native_gather(tmp_path):
    result = run_future_map(tmp_path, "0.5.23", HOTFUSE="1", HOTFUSE_DISABLE="spec_gather")
    assert result["gather_spec_extras"] == "spec_gather", "overlap_utils' copy of gather_spec_extras is rebound"
    assert all(result["equal"].values()) and result["dtypes_kept"]
    assert result["counters"] == {"fused": 0, "fallbacks": {"disabled: one index gather per buffer": 1}}


# ---- qk_norm_fp8: the real SGLang 0.5.23 QK-norm and static FP8 quant under torch.compile on CPU ----

def run_qk_norm(tmp_path, **flags):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return run_script(tmp_path, "sglang_qk_norm.py", "0.5.23", HOTFUSE_TEST_CUDA_GATE="1", **flags)


def test_qk_norm_and_fp8_quant_trace_as_one_graph_with_the_unfused_bytes(tmp_path):
    result = run_qk_norm(tmp_path, HOTFUSE="qk_norm_fp8")
    assert result["graph_break_count"] == 0 and result["graph_count"] == 1, result["break_reasons"]
    assert result["fullgraph"], result["fullgraph_error"]
    assert result["plain_fp8_cast_in_graph"] and not result["triton_kernel_in_graph"]
    assert result["compiled_fp8_equals_reference"], "FP8 bytes equal to the eager unfused path"
    assert result["k_max_error"] <= 1e-2  # bf16 norms; exact in practice


def test_qk_norm_patch_leaves_eager_calls_unchanged(tmp_path):
    patched = run_qk_norm(tmp_path / "on", HOTFUSE="qk_norm_fp8")
    stock = run_qk_norm(tmp_path / "off")
    assert patched["eager_q_bytes"] == stock["eager_q_bytes"] and patched["eager_k_bytes"] == stock["eager_k_bytes"]
