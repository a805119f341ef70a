"""The filtered sampling kernel on a real CUDA GPU (run on the device machine: `bash ci/gpu_run.sh OUT`).

The issue's exactness bar: at every parameter combination of its bench, at T in {0.01, 0.7, 2}, with half the
vocabulary at -inf, fp32 and bf16 logits, each engine's rule: the kept set the kernel reports equals the reference's,
and a chi-square test of many draws against the float64 reference distribution passes (and fails for the kernel run
one threshold off). Greedy rows equal argmax bit for bit; the kernel replays in a CUDA graph with the same tokens.
"""

import pytest
import torch

from gpu.cuda_graphs import capture
from hotfuse.kernels.sampling import DEFAULT_TUNING, filtered_unsupported_reason, run_filtered_sample, search, \
    temperature_sample
from hotfuse.kernels.sampling.filtered import CUDA_PENDING
from hotfuse.kernels.sampling.filters import RULES, filtered_probs_reference, kept_tokens_reference
from kernels.test_filtered_sampling import COMBINATIONS, RULE_CASES, chi_square_p_value, exact_cut_cases, \
    exact_cuts, half_masked_logits, kernel_kept, row_parameters

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (device machine only)")]

CUDA = torch.device("cuda")
DRAWS = 20_000


@pytest.fixture(autouse=True)
def fresh(fresh_hotfuse):
    """No kernel failures recorded by an earlier test (tests/conftest.py)."""


def on_gpu(*tensors):
    return [t.to(CUDA) for t in tensors]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rule", list(RULE_CASES))
@pytest.mark.parametrize("temperature", [0.01, 0.7, 2.0])
@pytest.mark.parametrize("combination", COMBINATIONS)
def test_kept_sets_equal_the_reference_at_real_vocabularies(dtype, rule, temperature, combination):
    rows, vocab = 16, 151936
    greedy_every = 4 if combination == COMBINATIONS[-1] else 0
    logits = half_masked_logits(rows, vocab, seed=COMBINATIONS.index(combination) * 10 + int(temperature * 10),
                                dtype=dtype).to(CUDA)
    t, k, p, q = on_gpu(*row_parameters(rows, combination, temperature, greedy_every))
    seeds = torch.arange(rows, dtype=torch.int64, device=CUDA) * 31 + 7
    assert filtered_unsupported_reason(logits, t, k, p, q, seeds) in (None, CUDA_PENDING)  # the kernel is called below
    thresholds = torch.full((rows, 5), float("nan"), device=CUDA)
    tokens = run_filtered_sample(logits, t, k, p, q, seeds, RULE_CASES[rule], thresholds=thresholds)
    greedy = t == 0
    t1 = torch.where(greedy, 1.0, t)
    ref = kept_tokens_reference(logits, t1, k, p, q, RULE_CASES[rule])
    got = kernel_kept(logits, thresholds)
    differ = (got != ref)[~greedy].sum(-1)
    # masses from the GPU's exp2 (ex2.approx) may put a top-p boundary token on the other side: one at most
    assert differ.max().item() <= 1, f"kept sets differ by {differ.tolist()} tokens"
    assert ref[~greedy].gather(1, tokens[~greedy].reshape(-1, 1)).all(), "a token outside the kept set was drawn"
    first_max = logits.float().argmax(dim=-1)
    assert torch.equal(tokens[greedy], first_max[greedy])
    # the bench's parameter sets are decided by the split search, not left to the one-program kernel
    assert (thresholds[~greedy, 4] == 1).all(), thresholds[~greedy, 4].tolist()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rule", ["vllm", "sglang"])
@pytest.mark.parametrize("temperature", [0.01, 0.7, 2.0])
@pytest.mark.parametrize("combination", COMBINATIONS)
def test_draws_follow_the_filtered_distribution_chi_square(dtype, rule, temperature, combination):
    vocab = 128256
    row = half_masked_logits(1, vocab, seed=3, dtype=dtype, scale=1.5).to(CUDA)
    k, p, q = combination
    rule_of = RULE_CASES["sglang_min_p"] if rule == "sglang" and q > 0 else RULE_CASES[rule]
    one = lambda v, dt=torch.float32: torch.tensor([v], dtype=dt, device=CUDA)  # noqa: E731

    def reference(top_k):  # float64 probabilities of the row with top-k `top_k`
        return filtered_probs_reference(row.double(), one(temperature, torch.float64), one(top_k, torch.int32),
                                        one(p, torch.float64), one(q, torch.float64), rule_of)[0]

    probs = reference(k)
    full = lambda v, dt=torch.float32: torch.full((DRAWS,), v, dtype=dt, device=CUDA)  # noqa: E731
    seeds = torch.arange(DRAWS, dtype=torch.int64, device=CUDA) * 7919 + 1
    logits = row.expand(DRAWS, -1)  # row stride 0: one row read DRAWS times
    tokens = run_filtered_sample(logits, full(temperature), full(k, torch.int32), full(p), full(q), seeds, rule_of)
    assert (probs[tokens] > 0).all(), "a filtered or masked token was drawn"
    assert chi_square_p_value(tokens.cpu(), probs.cpu()) > 1e-4
    if combination[0] > 0:  # the kernel run with top-k one smaller (a tighter threshold) draws from a smaller set
        wrong = run_filtered_sample(logits, full(temperature), full(k - 1, torch.int32), full(p), full(q), seeds,
                                    rule_of)
        probs_wrong = reference(k - 1)
        assert (probs_wrong[wrong] > 0).all(), "top-k one smaller drew a token only top-k keeps"
        dropped = probs[(probs > 0) & (probs_wrong == 0)].sum().item()
        # and the chi-square test rejects it where the dropped token is likely enough to be seen: >= 25 expected
        # draws of it (under SGLang's joint rule, or at a low temperature, top-p may decide the set instead, or the
        # k-th token may carry too little mass to miss in DRAWS draws)
        if dropped * DRAWS >= 25:
            assert chi_square_p_value(wrong.cpu(), probs.cpu()) <= 1e-4


def test_flat_rows_larger_than_the_buffer():
    """T = 2 over unit-variance logits: top-p keeps tens of thousands of tokens, past the candidate buffer."""
    logits = half_masked_logits(4, 262144, seed=5, scale=1.0).to(CUDA)
    t, k, p, q = on_gpu(*row_parameters(4, (-1, 0.95, 0.0), 2.0))
    k[1], p[2], q[3] = 5000, 0.5, 0.05  # min-p 0.05 keeps x >= max - 6 (T = 2): most of the row
    thresholds = torch.full((4, 5), float("nan"), device=CUDA)
    seeds = torch.arange(4, dtype=torch.int64, device=CUDA)
    run_filtered_sample(logits, t, k, p, q, seeds, RULES["vllm"], thresholds=thresholds)
    ref = kept_tokens_reference(logits, t, k, p, q, RULES["vllm"])
    assert ref.sum(-1).min() > DEFAULT_TUNING.filter_candidates
    assert ((kernel_kept(logits, thresholds) != ref).sum(-1) <= 1).all()


@pytest.mark.parametrize("b, v", [(1, 128256), (16, 151936), (64, 262144), (256, 128256)])
def test_replays_in_a_cuda_graph_with_the_same_tokens(b, v):
    logits = half_masked_logits(b, v, seed=b, dtype=torch.bfloat16).to(CUDA)
    t, k, p, q = on_gpu(*row_parameters(b, (20, 0.8, 0.0), 0.7, greedy_every=4))
    seeds = torch.arange(b, dtype=torch.int64, device=CUDA) + 5
    eager = run_filtered_sample(logits, t, k, p, q, seeds, RULES["vllm"])
    graph, out = capture(lambda: run_filtered_sample(logits, t, k, p, q, seeds, RULES["vllm"]))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, eager)
    fresh_logits = half_masked_logits(b, v, seed=b + 1, dtype=torch.bfloat16).to(CUDA)
    logits.copy_(fresh_logits)
    graph.replay()
    assert torch.equal(out, run_filtered_sample(fresh_logits, t, k, p, q, seeds, RULES["vllm"]))


def test_rows_without_filters_draw_what_temperature_sample_draws_and_rows_ignore_their_batch():
    logits = (torch.randn(64, 151936, device=CUDA) * 3).to(torch.bfloat16)
    t = torch.rand(64, device=CUDA) + 0.3
    seeds = torch.arange(64, dtype=torch.int64, device=CUDA) * 77
    off = torch.full((64,), -1, dtype=torch.int32, device=CUDA)
    ones, zeros = torch.ones(64, device=CUDA), torch.zeros(64, device=CUDA)
    got = run_filtered_sample(logits, t, off, ones, zeros, seeds, RULES["vllm"])
    assert torch.equal(got, temperature_sample(logits, t, seeds))
    k = torch.full((64,), 20, dtype=torch.int32, device=CUDA)
    p = torch.full((64,), 0.95, device=CUDA)
    together = run_filtered_sample(logits, t, k, p, zeros, seeds, RULES["vllm"])
    alone = torch.stack([run_filtered_sample(logits[i:i + 1], t[i:i + 1], k[i:i + 1], p[i:i + 1], zeros[i:i + 1],
                                             seeds[i:i + 1], RULES["vllm"])[0] for i in (0, 17, 63)])
    assert torch.equal(alone, together[[0, 17, 63]])


@pytest.mark.parametrize("rule", ["vllm", "sglang"])
@pytest.mark.parametrize("combination", COMBINATIONS)
def test_filtered_rows_draw_what_temperature_sample_draws_from_their_kept_tokens(rule, combination):
    """Whichever launch finds a row's cut (a counting pass, settle.py's settling launch, the one-program kernel), the
    row draws what temperature_sample draws with the same seed from its logits with every token it does not keep
    masked; and the launches replay in a CUDA graph with the same tokens."""
    rows, vocab = 64, 151936
    g = torch.Generator(device=CUDA).manual_seed(COMBINATIONS.index(combination))
    logits = torch.randn(rows, vocab, device=CUDA, generator=g) * 4
    t, k, p, q = on_gpu(*row_parameters(rows, combination, 1.0, 4 if combination == COMBINATIONS[-1] else 0))
    t = torch.where(t > 0, torch.rand(rows, device=CUDA, generator=g) + 0.3, t)
    seeds = torch.arange(rows, dtype=torch.int64, device=CUDA) * 13 + 1
    thresholds = torch.full((rows, 5), float("nan"), device=CUDA)
    tokens = run_filtered_sample(logits, t, k, p, q, seeds, RULE_CASES[rule], thresholds=thresholds)
    sampled = t > 0
    alone = logits.masked_fill(~kernel_kept(logits, thresholds), float("-inf"))
    expected = temperature_sample(alone[sampled], t[sampled], seeds[sampled])
    assert torch.equal(tokens[sampled], expected)
    graph, out = capture(lambda: run_filtered_sample(logits, t, k, p, q, seeds, RULE_CASES[rule]))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, tokens)


@pytest.mark.parametrize("rule", list(RULE_CASES))
def test_the_exact_cut_from_sorted_depths_gives_the_reference_cut(rule):
    """settle._exact_cut compiled, as the settling launch runs it on a GPU (the window's depths sorted): the
    float64 reference's cut on windows with and without ties, top-k and top-p each on or off, top-k's mass known
    or not (tests/kernels/test_filtered_sampling.py runs both of its ways in the interpreter)."""
    args, expected = exact_cut_cases(RULE_CASES[rule], CUDA)
    cut, status = exact_cuts(args, RULE_CASES[rule], True)
    assert torch.equal(cut, expected), (cut, expected)
    assert (status == search.STATUS["done"]).all()
