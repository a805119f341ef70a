"""filtered_sample against the filtered-sampling references (hotfuse.kernels.sampling.filters), through the Triton
interpreter. Two kinds of evidence:

- what each row keeps: the kernel reports its threshold (tau) and largest logit per row, and the kept set they
  define must equal `kept_tokens_reference` exactly, at every parameter combination of the issue's bench, each
  engine's rule, T in {0.01, 0.7, 2}, half the vocabulary at -inf, and with ties at the threshold;
- the draw: a chi-square test of many draws against the float64 reference distribution, which passes for the
  kernel and fails for the kernel run with a wrong threshold (top-k one larger, top-p larger).

The window search is exercised on both of its paths: the histogram's first cut, and bisection for rows whose kept
set is larger than the candidate buffer (the tests run with a 64-token buffer, and with the default on a few rows).
"""

from dataclasses import replace

import pytest
import torch

from hotfuse.kernels.sampling import DEFAULT_TUNING, filtered_sample, filtered_unsupported_reason, \
    run_filtered_sample, temperature_sample
from hotfuse.kernels.sampling.filters import RULES, SGLANG_WITH_MIN_P, filtered_probs_reference, \
    kept_tokens_reference
from hotfuse.kernels import tl, triton
from hotfuse.kernels.sampling import search, settle
from hotfuse.kernels.sampling.plan import later_search_pass_plan, search_pass_plan

SMALL_BUFFER = replace(DEFAULT_TUNING, filter_candidates=64, search_candidates=32)
# (top_k, top_p, min_p) of the bench; the last runs with 1 row in 4 greedy
COMBINATIONS = [(20, 0.95, 0.0), (-1, 0.9, 0.0), (64, 0.95, 0.0), (-1, 1.0, 0.05), (20, 0.8, 0.0)]
RULE_CASES = {"vllm": RULES["vllm"], "sglang": RULES["sglang"], "sglang_min_p": SGLANG_WITH_MIN_P}


@pytest.fixture(autouse=True)
def fresh(fresh_hotfuse):
    """No kernel failures recorded by an earlier test (tests/conftest.py)."""


def half_masked_logits(rows, vocab, seed, dtype=torch.float32, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, vocab, generator=g) * scale
    for r in range(rows):  # a different half of the vocabulary at -inf in each row
        x[r, torch.randperm(vocab, generator=g)[: vocab // 2]] = float("-inf")
    return x.to(dtype)


def row_parameters(rows, combination, temperature, greedy_every=0):
    k, p, q = combination
    t = torch.full((rows,), temperature)
    if greedy_every:
        t[::greedy_every] = 0.0
    return t, torch.full((rows,), k, dtype=torch.int32), torch.full((rows,), p), torch.full((rows,), q)


def kernel_kept(logits, thresholds):
    """The kept set the kernel reports (filtered.launch_filtered_sample): finite x >= tau whose depth below the
    largest logit, (top - x) * s with the kernel's own s = log2(e) / t, is below the cut."""
    x = logits.float()
    tau, top, cut, scale = (thresholds[:, i:i + 1] for i in range(4))
    return (x > float("-inf")) & (x >= tau) & ((cut == float("inf")) | ((top - x) * scale < cut))


def draw(logits, t, k, p, q, rule, seeds, tuning=SMALL_BUFFER):
    thresholds = torch.full((logits.shape[0], 5), float("nan"))
    assert filtered_unsupported_reason(logits, t, k, p, q, seeds) is None, "the kernel takes these inputs"
    tokens = run_filtered_sample(logits, t, k, p, q, seeds, rule, tuning=tuning, thresholds=thresholds)
    return tokens, thresholds


def assert_kept_sets_equal(logits, t, k, p, q, rule, tuning=SMALL_BUFFER):
    seeds = torch.arange(logits.shape[0], dtype=torch.int64) + 11
    tokens, thresholds = draw(logits, t, k, p, q, rule, seeds, tuning)
    greedy = t == 0
    ref = kept_tokens_reference(logits, torch.where(greedy, 1.0, t), k, p, q, rule)
    got = kernel_kept(logits, thresholds)
    sampled = ~greedy
    mismatch = (got != ref)[sampled].any(dim=-1)
    assert not mismatch.any(), (f"rows {sampled.nonzero().flatten()[mismatch].tolist()} keep "
                                f"{got[sampled][mismatch].sum(-1).tolist()} tokens, the reference "
                                f"{ref[sampled][mismatch].sum(-1).tolist()}")
    assert ref[sampled].gather(1, tokens[sampled].reshape(-1, 1)).all(), "a token outside the kept set was drawn"
    first_max = logits.float().masked_fill(torch.isnan(logits), float("-inf")).argmax(dim=-1)
    assert torch.equal(tokens[greedy], first_max[greedy]), "greedy rows must draw the first largest logit"
    return ref


@pytest.mark.parametrize("rule", list(RULE_CASES))
@pytest.mark.parametrize("temperature", [0.01, 0.7, 2.0])
@pytest.mark.parametrize("combination", COMBINATIONS)
def test_the_kernel_keeps_what_the_rule_keeps(rule, temperature, combination):
    rows = 8
    greedy_every = 4 if combination == COMBINATIONS[-1] else 0
    seed = COMBINATIONS.index(combination) * 100 + int(temperature * 10) * 10 + list(RULE_CASES).index(rule)
    logits = half_masked_logits(rows, 1500, seed=seed)
    t, k, p, q = row_parameters(rows, combination, temperature, greedy_every)
    ref = assert_kept_sets_equal(logits, t, k, p, q, RULE_CASES[rule])
    assert ref[t > 0].sum(-1).min() >= 1


def test_off_values_mix_with_active_ones_in_one_batch():
    rows = 12
    logits = half_masked_logits(rows, 3000, seed=5, dtype=torch.float16)
    g = torch.Generator().manual_seed(6)
    t = torch.tensor([0.7, 0.0, 1.3, 0.01, 2.0, 0.9, 0.5, 0.0, 1.0, 0.7, 1.5, 0.3])
    k = torch.tensor([20, -1, 0, 3000, 64, 1, -1, 20, 5, 100, -1, 40], dtype=torch.int32)
    p = torch.tensor([0.95, 1.0, 0.8, 1.0, 1.0, 0.5, 0.99, 0.9, 1.0, 0.3, 0.95, 1.0])
    q = torch.tensor([0.0, 0.1, 0.0, 0.2, 0.0, 0.0, 0.01, 0.0, 0.0, 0.05, 0.0, 0.0])
    assert g is not None
    for rule in RULE_CASES.values():
        assert_kept_sets_equal(logits, t, k, p, q, rule)


def test_rows_larger_than_the_buffer_and_the_default_buffer():
    """Flat rows (T = 2, top-p 0.95 over 6000 tokens) keep thousands of tokens: the search bisects past the
    64-token buffer, and the default 1024-token buffer takes the histogram's first cut."""
    logits = half_masked_logits(3, 6000, seed=8, scale=1.0)
    t, k, p, q = row_parameters(3, (-1, 0.95, 0.0), 2.0)
    k[1], p[2] = 300, 0.6
    ref = assert_kept_sets_equal(logits, t, k, p, q, RULES["vllm"])
    assert ref.sum(-1).max() > 1024
    assert_kept_sets_equal(logits[1:], t[1:], k[1:], p[1:], q[1:], RULES["sglang"], tuning=DEFAULT_TUNING)


def test_the_split_search_decides_ordinary_rows_and_leaves_the_rest_to_the_one_program_kernel():
    """Rows like the bench's (randn x 4, T in [0.3, 1.3)) at every parameter set are decided by the split search
    (search.py) with the default tuning; with one counting pass and a 16-token window most are left to the
    one-program kernel, and what they keep is still the reference's."""
    rows, vocab = 4, 12000
    g = torch.Generator().manual_seed(17)
    logits = torch.randn(rows, vocab, generator=g) * 4
    t = torch.rand(rows, generator=g) + 0.3
    # 64 bins: the default's 128 decide these rows in one pass with 16 candidates
    one_pass = replace(DEFAULT_TUNING, search_passes=1, search_candidates=16, search_bins=64)
    for combination in COMBINATIONS[:4]:
        _t, k, p, q = row_parameters(rows, combination, 1.0)
        for rule in RULE_CASES.values():
            seeds = torch.arange(rows, dtype=torch.int64)
            _tokens, thresholds = draw(logits, t, k, p, q, rule, seeds, DEFAULT_TUNING)
            assert (thresholds[:, 4] == 1).all(), (combination, rule.name, thresholds[:, 4].tolist())
            assert_kept_sets_equal(logits, t, k, p, q, rule, tuning=DEFAULT_TUNING)
            _tokens, thresholds = draw(logits, t, k, p, q, rule, seeds, one_pass)
            if combination[3 - 1] == 0.0 and (combination[0] > 0 or combination[1] < 1):
                assert (thresholds[:, 4] == 2).any(), (combination, rule.name)
            assert_kept_sets_equal(logits, t, k, p, q, rule, tuning=one_pass)


def test_the_passes_geometry_changes_neither_kept_sets_nor_tokens(monkeypatch):
    """The passes' chunks per row (search_programs_per_multiprocessor: one chunk a row up to one a tile, or the
    race's chunks; search_later_pass_rows: another split after the first pass), tokens per counting step
    (search_step_blocks) and histogram bins (search_bins, search_first_bins_per_depth) only change how the cut is
    found: the same thresholds, the same tokens."""
    rows, vocab = 3, 9000
    g = torch.Generator().manual_seed(23)
    logits = torch.randn(rows, vocab, generator=g) * 4
    t = torch.rand(rows, generator=g) + 0.3
    _t, k, p, q = row_parameters(rows, (20, 0.95, 0.0), 1.0)
    p[1], k[2] = 0.9, -1
    seeds = torch.arange(rows, dtype=torch.int64) + 5
    counted = RowsWithStatus(search._search_pass_kernel, "count", 4)
    monkeypatch.setattr(search, "_search_pass_kernel", counted)
    chunks = set()
    outcomes = []
    for per, step, warps, later, bins in ((None, 1, 8, None, (64, 4)), (1, 1, 4, None, (32, 2)),
                                          (2, 2, 8, None, (128, 8)), (64, 1, 8, None, (128, 4)),
                                          (1, 2, 8, 1, (64, 4))):
        tuning = replace(DEFAULT_TUNING, search_programs_per_multiprocessor=per, search_step_blocks=step,
                         search_pass_warps=warps, search_later_pass_rows=later, search_bins=bins[0],
                         search_first_bins_per_depth=bins[1])
        chunks.add(search_pass_plan(rows, vocab, logits.device, tuning).chunks)
        chunks.add(later_search_pass_plan(rows, vocab, logits.device, tuning).chunks)
        outcomes.append(draw(logits, t, k, p, q, RULES["vllm"], seeds, tuning))
        assert_kept_sets_equal(logits, t, k, p, q, RULES["vllm"], tuning=tuning)
    assert chunks == {1, 2, 3}  # 9000 tokens: 3 tiles of 4096; the interpreter counts 4 multiprocessors
    assert counted.rows[-4] > 0, "the last tuning's later passes (3 chunks a row, the first's 1) had no row to count"
    for tokens, thresholds in outcomes[1:]:
        assert torch.equal(tokens, outcomes[0][0])
        assert torch.equal(thresholds, outcomes[0][1])


class RowsWithStatus:
    """Stands in for a kernel of the split search: launches it, and counts the rows that had the status it acts on
    before each launch (settle._settle_kernel: SETTLE; search._search_pass_kernel: COUNT), the state being its
    argument at position state_argument."""

    def __init__(self, kernel, status, state_argument):
        self.kernel, self.status, self.state_argument, self.rows = kernel, search.STATUS[status], state_argument, []

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            state = args[self.state_argument]
            self.rows.append(int((state[:, search.COLUMN["status"]] == self.status).sum()))
            self.kernel[grid](*args, **kwargs)
        return launch


@pytest.mark.parametrize("rule", list(RULE_CASES))
def test_filtered_rows_draw_what_temperature_sample_draws_from_their_kept_tokens(rule, monkeypatch):
    """Whichever launch finds a row's cut (a counting pass; settle.py's settling launch, after the race, for a
    window of at most search_candidates tokens; or the one-program kernel), the row draws the token
    temperature_sample draws with the same seed from its logits with every token it does not keep masked: the
    same noise, the same race. With one counting pass, rows are left to each of them."""
    rows, vocab = 6, 9000
    g = torch.Generator().manual_seed(31)
    logits = torch.randn(rows, vocab, generator=g) * 4
    logits[4:, ::5] = float("-inf")
    logits[5, 7] = float("nan")
    t = torch.rand(rows, generator=g) + 0.3
    seeds = torch.arange(rows, dtype=torch.int64) + 40
    settled = RowsWithStatus(settle._settle_kernel, "settle", 5)
    monkeypatch.setattr(settle, "_settle_kernel", settled)
    by = set()
    for combination in COMBINATIONS:
        _t, k, p, q = row_parameters(rows, combination, 1.0)
        for tuning in (SMALL_BUFFER, replace(SMALL_BUFFER, search_passes=1)):
            tokens, thresholds = draw(logits, t, k, p, q, RULE_CASES[rule], seeds, tuning)
            alone = logits.masked_fill(~kernel_kept(logits, thresholds), float("-inf"))
            assert torch.equal(tokens, temperature_sample(alone, t, seeds)), (combination, tuning.search_passes)
            by |= set(thresholds[:, 4].tolist())
    assert sum(settled.rows) > 0, "no row was settled by the race"
    assert by == {1.0, 2.0}, by


@triton.jit
def _exact_cut_cases(window_ptr, n_ptr, k_ptr, p_ptr, above_ptr, state_ptr, vocab, RENORMALISED: tl.constexpr,
                     STRICT: tl.constexpr, CAP: tl.constexpr, SORTED: tl.constexpr, STATE: tl.constexpr,
                     S_DTOP: tl.constexpr):
    """settle._exact_cut on one window a program."""
    row = tl.program_id(0)
    state = state_ptr + row * STATE
    settle._exact_cut(window_ptr + row * CAP, tl.load(n_ptr + row), state, vocab, tl.load(k_ptr + row),
                      tl.load(p_ptr + row), tl.load(above_ptr + 2 * row), tl.load(above_ptr + 2 * row + 1),
                      tl.load(state + S_DTOP), RENORMALISED, STRICT, CAP, 4, SORTED)


def exact_cut_reference(window, n, k, p, above, state, vocab, renormalised, strict):
    """The exact cut in float64, pair by pair: a token is kept when fewer than k tokens lie strictly above it and
    their mass is below top-p's target (p times the row's mass, or under a renormalised rule the mass top-k
    keeps); the cut is just below the deepest kept token's depth (none kept: the window's top)."""
    column = search.COLUMN
    cuts = []
    for r in range(window.shape[0]):
        d = window[r, :n[r]].double()
        count = above[r, 0].double() + (d[None, :] < d[:, None]).sum(1)
        mass_above = above[r, 1].double() + torch.where(d[None, :] < d[:, None], torch.exp2(-d)[None, :], 0.0).sum(1)
        k_on, p_on = 0 < k[r] < vocab, p[r] < 1
        target = p[r].double() * state[r, column["z"]].double()
        if renormalised and k_on:
            low, high = state[r, column["kmass_low"]], state[r, column["kmass_high"]]
            kmass = low.double() if low == high else above[r, 1].double() + torch.exp2(-d)[count < k[r]].sum()
            target = p[r].double() * kmass
        kept = (count < k[r]) | (not k_on)
        if p_on:
            kept &= (mass_above < target) if strict else (mass_above <= target)
        if kept.any():
            deepest = d[kept].max().float().reshape(1)
            cut = (deepest.view(torch.int32) + 1).view(torch.float32).item()  # the next fp32 up
        else:
            cut = state[r, column["d_top"]].item()
        cuts.append(min(cut, state[r, column["limit"]].item()))
    return torch.tensor(cuts)


def exact_cut_cases(rule, device):
    """Windows of a settled row (64 of them, at most 32 tokens each, every other one with many ties; top-k and
    top-p each on or off, top-k's mass known from the passes or not, one row under a min-p limit), as
    (the arguments of _exact_cut_cases, the float64 reference's cuts)."""
    g = torch.Generator().manual_seed(3)
    cap, vocab, rows = 32, 5000, 64
    n = torch.randint(1, cap + 1, (rows,), generator=g, dtype=torch.int32)
    n[:3] = torch.tensor([1, 2, cap])
    d_top = torch.rand(rows, generator=g) * 2
    window = d_top[:, None] + torch.rand(rows, cap, generator=g) * 4
    window[::2] = (window[::2] * 2).round() / 2  # every other row: depths on a grid of 1/2, many ties
    window = torch.where(torch.arange(cap) < n[:, None], window, float("inf"))
    above = torch.stack([torch.randint(0, 6, (rows,), generator=g).float(), torch.zeros(rows)], dim=1)
    above[:, 1] = above[:, 0] * torch.exp2(-d_top / 2)  # tokens above the window weigh more than 2^-d_top each
    window_mass = torch.exp2(-window).sum(1)
    k = (above[:, 0] + (torch.rand(rows, generator=g) * n).floor() + 1).int()
    k[1::4] = -1
    p = (above[:, 1] + torch.rand(rows, generator=g) * window_mass) / (above[:, 1] + window_mass + 0.5)
    p[2::4] = 1.0
    state = torch.zeros(rows, search.STATE_FIELDS)
    column = search.COLUMN
    state[:, column["z"]] = above[:, 1] + window_mass + 0.5
    state[:, column["d_top"]] = d_top
    state[:, column["limit"]] = float("inf")
    state[3, column["limit"]] = d_top[3] + 0.5
    state[:, column["kmass_high"]] = float("inf")
    known = torch.arange(rows) % 3 == 0  # top-k's mass known from the passes: what the window's top keeps
    state[known, column["kmass_low"]] = state[known, column["kmass_high"]] = above[known, 1] + 0.25
    expected = exact_cut_reference(window, n, k, p, above, state, vocab, rule.top_p_renormalised,
                                   rule.top_p_boundary_strict)
    assert len(set(expected.tolist())) > rows // 2, "the cases must fall at many different depths"
    return [x.to(device) for x in (window, n, k, p, above, state)] + [vocab], expected


def exact_cuts(args, rule, sorted_):
    """_exact_cut's cut of each case (a program each) and the statuses it leaves."""
    window, n, k, p, above, state, vocab = args
    out = state.clone()
    _exact_cut_cases[(window.shape[0],)](window, n, k, p, above, out, vocab, RENORMALISED=rule.top_p_renormalised,
                                         STRICT=rule.top_p_boundary_strict, CAP=window.shape[1], SORTED=sorted_,
                                         STATE=search.STATE_FIELDS, S_DTOP=search.COLUMN["d_top"])
    return out[:, search.COLUMN["cut"]].cpu(), out[:, search.COLUMN["status"]].cpu()


@pytest.mark.parametrize("rule", list(RULE_CASES))
def test_the_exact_cut_from_sorted_depths_is_the_pairwise_one(rule):
    """settle._exact_cut finds a settled row's cut from its window's depths sorted (GPUs) or by comparing every
    pair (the interpreter, whose sort is slow): both give the float64 reference's cut."""
    args, expected = exact_cut_cases(RULE_CASES[rule], "cpu")
    for sorted_ in (True, False):
        cut, status = exact_cuts(args, RULE_CASES[rule], sorted_)
        assert torch.equal(cut, expected), (sorted_, cut, expected)
        assert (status == search.STATUS["done"]).all()


def test_ties_at_the_threshold_are_kept_whole():
    g = torch.Generator().manual_seed(9)
    logits = (torch.randn(6, 800, generator=g) * 4).round() / 2  # values on a 0.5 grid: many ties
    t, k, p, q = row_parameters(6, (20, 0.9, 0.0), 0.8)
    k[3:] = -1
    ref = assert_kept_sets_equal(logits, t, k, p, q, RULES["vllm"])
    assert_kept_sets_equal(logits, t, k, p, q, RULES["sglang"])
    assert (ref[:3].sum(-1) > 20).any(), "some top-k boundary must fall inside a tie group"


def test_greedy_rows_are_the_first_largest_logit_bit_for_bit():
    logits = torch.randn(4, 5000)
    logits[0, [17, 900, 4000]] = 9.0       # ties: the first one
    logits[1, :] = float("-inf")
    logits[1, 4321] = -1e30
    logits[2, 10] = float("nan")           # NaN: masked, never the argmax
    logits[3, :] = float("-inf")           # nothing left: token 0
    t = torch.tensor([0.0, 0.0, 0.0, 0.7])
    k = torch.tensor([20, -1, 5, 20], dtype=torch.int32)
    p, q = torch.tensor([0.9, 1.0, 1.0, 0.9]), torch.zeros(4)
    got = run_filtered_sample(logits, t, k, p, q, torch.arange(4), RULES["vllm"], tuning=SMALL_BUFFER)
    expected = logits.masked_fill(torch.isnan(logits), float("-inf")).argmax(dim=-1)
    assert got.tolist() == [17, 4321, expected[2].item(), 0]


def test_a_row_without_filters_draws_what_temperature_sample_draws():
    logits = torch.randn(5, 9000) * 2
    logits[:, ::3] = float("-inf")
    t = torch.tensor([0.5, 0.7, 1.0, 1.7, 3.0])
    seeds = torch.tensor([3, 1 << 40, 77, 5, 123456789], dtype=torch.int64)
    off = torch.full((5,), -1, dtype=torch.int32)
    got = run_filtered_sample(logits, t, off, torch.ones(5), torch.zeros(5), seeds, RULES["vllm"])
    assert torch.equal(got, temperature_sample(logits, t, seeds))


def test_a_rows_token_depends_on_neither_its_batch_nor_its_position():
    logits = half_masked_logits(6, 2500, seed=12)
    t, k, p, q = row_parameters(6, (20, 0.95, 0.0), 0.9)
    seeds = torch.arange(6, dtype=torch.int64) * 1000 + 1
    together = run_filtered_sample(logits, t, k, p, q, seeds, RULES["vllm"], tuning=SMALL_BUFFER)
    order = torch.tensor([4, 1, 5, 0])
    apart = run_filtered_sample(logits[order], t[order], k[order], p[order], q[order], seeds[order], RULES["vllm"],
                                tuning=SMALL_BUFFER)
    assert torch.equal(apart, together[order])


def test_nan_logits_are_never_drawn():
    logits = torch.randn(3, 700)
    logits[:, ::2] = float("nan")
    t, k, p, q = row_parameters(3, (-1, 0.99, 0.0), 2.0)
    for seed in range(4):
        got = run_filtered_sample(logits, t, k, p, q, torch.arange(3) + 100 * seed, RULES["vllm"], tuning=SMALL_BUFFER)
        assert (got % 2 == 1).all()


def test_inputs_the_kernel_does_not_take_fall_back_to_the_reference():
    logits = torch.randn(2, 300, dtype=torch.float64)
    t, k, p, q = row_parameters(2, (5, 0.9, 0.0), 0.7)
    assert filtered_unsupported_reason(logits, t, k, p, q, torch.zeros(2, dtype=torch.int64)) == "dtype=float64"
    got = filtered_sample(logits, t, k, p, q, torch.zeros(2, dtype=torch.int64), "vllm")
    ref = kept_tokens_reference(logits, t, k, p, q, "vllm")
    assert ref.gather(1, got.reshape(-1, 1)).all()
    with pytest.raises(ValueError, match="one value per row"):
        filtered_sample(torch.randn(2, 10), t, k[:1], p, q, torch.zeros(2, dtype=torch.int64), "vllm")


# ---- the draw: chi-square against the float64 reference distribution -----------------------------------------

def chi_square_p_value(tokens, probs):
    """p-value of the draws against probs (float64 [V]); cells with an expected count below 5 are pooled."""
    n = tokens.numel()
    observed = torch.bincount(tokens, minlength=probs.numel()).double()
    expected = probs * n
    big = expected >= 5
    obs = torch.cat([observed[big], observed[~big].sum().reshape(1)])
    exp = torch.cat([expected[big], expected[~big].sum().reshape(1)])
    if exp[-1] < 5:  # fold the pooled remainder into the smallest cell
        obs, exp = obs[:-1].clone(), exp[:-1].clone()
        obs[exp.argmin()] += observed[~big].sum()
        exp[exp.argmin()] += expected[~big].sum()
    stat = ((obs - exp) ** 2 / exp).sum()
    dof = max(1, exp.numel() - 1)
    return torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), stat / 2).item()


def draws(row, t, k, p, q, rule, n, tuning=SMALL_BUFFER):
    """n draws from one row: the row repeated n times with n seeds (a batch of identical rows)."""
    logits = row.reshape(1, -1).expand(n, -1).contiguous()
    full = lambda v, dt=torch.float32: torch.full((n,), v, dtype=dt)  # noqa: E731
    seeds = torch.arange(n, dtype=torch.int64) * 7919 + 1
    return run_filtered_sample(logits, full(t), full(k, torch.int32), full(p), full(q), seeds, rule, tuning=tuning)


CHI_SQUARE_CASES = [
    # (rule, (top_k, top_p, min_p), temperature, dtype)
    ("vllm", (20, 0.95, 0.0), 0.7, torch.float32),
    ("vllm", (-1, 0.9, 0.0), 2.0, torch.float32),
    ("vllm", (64, 0.95, 0.0), 0.7, torch.float16),
    ("vllm", (-1, 1.0, 0.05), 2.0, torch.float32),
    ("vllm", (20, 0.8, 0.0), 0.01, torch.float32),
    ("sglang", (20, 0.95, 0.0), 2.0, torch.float32),
    ("sglang_min_p", (20, 0.8, 0.1), 0.7, torch.float32),
]
DRAWS = 600


def chi_square_row(seed, dtype):
    row = half_masked_logits(1, 400, seed=seed, dtype=dtype, scale=1.5)[0]
    return row


@pytest.mark.parametrize("rule, combination, temperature, dtype", CHI_SQUARE_CASES)
def test_draws_follow_the_filtered_distribution(rule, combination, temperature, dtype):
    row = chi_square_row(21, dtype)
    k, p, q = combination
    one = lambda v, dt=torch.float32: torch.tensor([v], dtype=dt)  # noqa: E731
    probs = filtered_probs_reference(row.reshape(1, -1).double(), one(temperature, torch.float64),
                                     one(k, torch.int32), one(p, torch.float64), one(q, torch.float64),
                                     RULE_CASES[rule])[0].double()
    tokens = draws(row, temperature, k, p, q, RULE_CASES[rule], DRAWS)
    assert (probs[tokens] > 0).all(), "a filtered or masked token was drawn"
    assert chi_square_p_value(tokens, probs) > 1e-3


@pytest.mark.parametrize("wrong", ["top_k one larger", "top_k one smaller", "top_p 0.15 larger", "top_p 0.15 smaller"])
def test_the_chi_square_test_fails_a_kernel_with_a_wrong_threshold(wrong):
    """The same test, with the kernel run one threshold off: the draws must be rejected. A looser threshold draws
    a token the reference filters; a tighter one draws only kept tokens, and the chi-square test must see it."""
    row = chi_square_row(21, torch.float32)
    k, p, q, temperature = (8, 0.95, 0.0, 2.0) if wrong.startswith("top_k") else (-1, 0.7, 0.0, 2.0)
    one = lambda v, dt=torch.float32: torch.tensor([v], dtype=dt)  # noqa: E731
    probs = filtered_probs_reference(row.reshape(1, -1).double(), one(temperature, torch.float64),
                                     one(k, torch.int32), one(p, torch.float64), one(q, torch.float64),
                                     RULES["vllm"])[0].double()
    step = 1 if "larger" in wrong else -1
    wrong_k, wrong_p = (k + step, p) if wrong.startswith("top_k") else (k, p + 0.15 * step)
    tokens = draws(row, temperature, wrong_k, wrong_p, q, RULES["vllm"], DRAWS)
    outside = not (probs[tokens] > 0).all()
    if "smaller" in wrong:
        assert not outside, "a tighter threshold draws only kept tokens: the chi-square test alone must see it"
    assert outside or chi_square_p_value(tokens, probs) <= 1e-3
