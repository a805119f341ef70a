"""Filtered sampling: temperature, then min-p, top-k and top-p, as each engine defines them. The torch references
(the unfused path, and what a filtered-sampling kernel is tested against).

filtered_probs_reference(logits [B, V], temperatures [B], top_k [B], top_p [B], min_p [B], rule) -> probs [B, V]
    the distribution a row is sampled from: softmax(logits / t) restricted to the tokens the rule keeps,
    renormalised (fp32). A row with temperature 0 is greedy: all its mass on its first largest logit.
filtered_sample_reference(..., generator=None) -> token ids [B] int64: one draw from those probabilities.

Every filter keeps the tokens whose value is at least a threshold, so the kept set of a row is always "every token
with scaled logit >= tau": a prefix of the tokens sorted by probability, ties at the threshold kept whole. The
rules differ in how tau is found ("off" values: top_k <= 0 or >= V, top_p >= 1, min_p <= 0):

RULES["vllm"] (vLLM's V1 and V2 samplers, `apply_top_k_top_p` and its min-p kernel):
    x = logits / t; min-p first, on the whole distribution: keep x >= max(x) + log(min_p); then top-k: keep
    x >= the k-th largest x (ties at the k-th value kept, as vLLM's `logits < kth_value` mask does); then top-p on
    the distribution renormalised over what is left: keep a token when the mass of the kept tokens above it is
    < p times the kept mass (vLLM masks ascending cumulative sums <= 1 - p: the token that crosses p is kept, and
    the largest always is).
RULES["sglang"] (SGLang's FlashInfer sampling backend, its default on CUDA):
    probabilities softmax(logits / t); without min-p, top-k and top-p jointly on those probabilities
    (`filter_apply_order="joint"`): keep a token in the top k (ties kept) whose mass above it is <= p; with
    min-p, top-k then top-p on the top-k-renormalised probabilities (`top_k_renorm_prob`, `top_p_renorm_prob`),
    then min-p: keep p >= min_p * max p.

Where an engine itself breaks ties by a sort order (vLLM's top-p sort, SGLang's torch backend's top-k ranks), the
order among equal values is unspecified there; hotfuse keeps the whole tie group at the threshold. For logits
without ties at the threshold the kept sets are the engines' exactly (tests/engines/test_filtered_sampling_rules.py
compares them with the engines' own code).

This module knows nothing about engines beyond these written rules, and keeps no books.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FilterRule:
    """How an engine chains its filters. See the module docstring."""

    name: str
    min_p_first: bool            # min-p on the whole distribution before top-k / top-p (vLLM) or last (SGLang)
    top_p_renormalised: bool     # top-p against the mass left by the filters before it (vLLM), or the row's mass
    top_p_boundary_strict: bool  # keep when the mass above < p (vLLM) or <= p (SGLang)


RULES = {
    "vllm": FilterRule("vllm", min_p_first=True, top_p_renormalised=True, top_p_boundary_strict=True),
    "sglang": FilterRule("sglang", min_p_first=False, top_p_renormalised=False, top_p_boundary_strict=False),
}
# SGLang with min-p renormalises after top-k before top-p (`top_k_renorm_prob`, then `top_p_renorm_prob`).
SGLANG_WITH_MIN_P = FilterRule("sglang", min_p_first=False, top_p_renormalised=True, top_p_boundary_strict=False)


def resolve_rule(rule: str | FilterRule, min_p: torch.Tensor) -> FilterRule:
    """A rule by engine name: SGLang's depends on whether any row of the batch has min-p (a host read of min_p;
    engines know it without one, so adapters pass the FilterRule itself)."""
    if not isinstance(rule, str):
        return rule
    return SGLANG_WITH_MIN_P if rule == "sglang" and bool((min_p > 0).any()) else RULES[rule]


def _mass_above(values: torch.Tensor, probs: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Per token, the mass (fp64) of the kept tokens with a strictly larger value: a tie group shares the mass
    before its first member."""
    order = torch.argsort(values, dim=-1, descending=True, stable=True)
    v = values.gather(-1, order)
    p = torch.where(kept, probs, 0).gather(-1, order).double()
    before = p.cumsum(-1) - p  # exclusive cumulative mass, largest values first
    first_of_group = torch.ones_like(v, dtype=torch.bool)
    first_of_group[:, 1:] = v[:, 1:] != v[:, :-1]
    positions = torch.arange(v.shape[-1], device=v.device).expand_as(v)
    group_start = torch.cummax(torch.where(first_of_group, positions, 0), dim=-1).values
    return torch.empty_like(before).scatter_(-1, order, before.gather(-1, group_start))


def kept_tokens_reference(logits: torch.Tensor, temperatures: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor,
                          min_p: torch.Tensor, rule: str | FilterRule) -> torch.Tensor:
    """bool [B, V]: the tokens each row may draw (greedy rows: none; see filtered_probs_reference)."""
    rows, vocab = logits.shape
    x = logits.float() / temperatures.float().reshape(rows, 1).clamp_min(torch.finfo(torch.float32).tiny)
    x = x.masked_fill(torch.isnan(x), float("-inf"))
    kept = x > float("-inf")
    rule = resolve_rule(rule, min_p)
    k = top_k.reshape(rows, 1).long()
    k_on = (k > 0) & (k < vocab)
    p = top_p.double().reshape(rows, 1)
    p_on = p < 1.0
    mp = min_p.double().reshape(rows, 1)
    mp_on = mp > 0.0
    probs = torch.softmax(x, dim=-1)  # (the row's own distribution: NaN-free, -inf masked)

    def min_p_filter(kept):
        if rule.min_p_first:  # vLLM: on the scaled logits
            top = x.max(dim=-1, keepdim=True).values
            return kept & (~mp_on | (x >= top + torch.log(mp.clamp_min(1e-300)).float()))
        q = torch.where(kept, probs, 0)  # SGLang: on the (renormalised) probabilities, relative to their max
        return kept & (~mp_on | (q.double() >= q.max(dim=-1, keepdim=True).values.double() * mp))

    def top_k_filter(kept):
        kth = torch.topk(torch.where(kept, x, float("-inf")), min(vocab, int(k.clamp(1, vocab).max())),
                         dim=-1).values.gather(-1, (k.clamp(1, vocab) - 1))
        return kept & (~k_on | (x >= kth))

    def top_p_filter(kept, base):
        total = torch.where(base, probs, 0).double().sum(-1, keepdim=True) if rule.top_p_renormalised else 1.0
        above = _mass_above(x, probs, base)
        inside = above < p * total if rule.top_p_boundary_strict else above <= p * total
        return kept & (~p_on | inside)

    if rule.min_p_first:
        kept = min_p_filter(kept)
        kept = top_k_filter(kept)
        kept = top_p_filter(kept, kept)
    else:
        after_k = top_k_filter(kept)
        kept = top_p_filter(after_k, after_k if rule.top_p_renormalised else kept)
        kept = min_p_filter(kept)
    return kept


def filtered_probs_reference(logits: torch.Tensor, temperatures: torch.Tensor, top_k: torch.Tensor,
                             top_p: torch.Tensor, min_p: torch.Tensor, rule: str | FilterRule) -> torch.Tensor:
    """fp32 [B, V]: the distribution each row is sampled from under `rule` (see the module docstring)."""
    rows, vocab = logits.shape
    greedy = temperatures.reshape(rows) == 0
    kept = kept_tokens_reference(logits, torch.where(greedy, 1.0, temperatures.reshape(rows).float()), top_k,
                                 top_p, min_p, rule)
    x = logits.float() / torch.where(greedy, 1.0, temperatures.reshape(rows).float()).reshape(rows, 1)
    probs = torch.softmax(x.masked_fill(~kept, float("-inf")), dim=-1)
    top = logits.float().masked_fill(torch.isnan(logits), float("-inf")).argmax(dim=-1)
    one_hot = torch.zeros_like(probs).scatter_(-1, top.reshape(rows, 1), 1.0)
    return torch.where(greedy.reshape(rows, 1), one_hot, probs)


def filtered_sample_reference(logits: torch.Tensor, temperatures: torch.Tensor, top_k: torch.Tensor,
                              top_p: torch.Tensor, min_p: torch.Tensor, rule: str | FilterRule,
                              generator: torch.Generator | None = None) -> torch.Tensor:
    """int64 [B]: one token per row from filtered_probs_reference (an exponential race: argmax p / E)."""
    if logits.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=logits.device)
    probs = filtered_probs_reference(logits, temperatures, top_k, top_p, min_p, rule)
    noise = torch.empty_like(probs).exponential_(generator=generator)
    return probs.div_(noise).argmax(dim=-1)
