"""ci/vendor_vllm_sampling.py: vLLM 0.34's own sampling kernels, copied out of its wheel with their vLLM imports
replaced, load without vLLM and compute what vLLM's rule says (run here in Triton's interpreter), so the GPU bench
that times them beside hotfuse's kernel times vLLM's path and not a broken copy of it."""

import ast
import sys
from pathlib import Path

import pytest
import torch

from hotfuse.bench.filtered_sampling import load_vllm_sampling
from hotfuse.kernels.sampling.filters import RULES, kept_tokens_reference
from test_compat import wheel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ci"))
import vendor_vllm_sampling  # noqa: E402

VOCAB = 700


@pytest.fixture(scope="module")
def vendored(tmp_path_factory):
    out = tmp_path_factory.mktemp("upstream")
    vendor_vllm_sampling.vendor(str(wheel("vllm", "0.34.0")), str(out))
    modules = load_vllm_sampling(str(out))  # as hotfuse bench loads them
    modules["vllm_topk_topp"].num_compute_units = lambda device_index=None: 4  # no CUDA here
    return modules


def rows(seed=0, n=6):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, VOCAB, generator=g) * 3
    k = torch.tensor([20, VOCAB, 5, 64, VOCAB, 1], dtype=torch.int32)[:n]
    p = torch.tensor([0.95, 0.9, 1.0, 0.8, 1.0, 0.5])[:n]
    return logits, k, p


def kept(masked):
    return masked > float("-inf")


def test_no_vllm_import_is_left(vendored):
    for name, module in vendored.items():
        for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "vllm", (name, node.module)
            elif isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] != "vllm" for a in node.names), name


def test_vllms_torch_top_k_top_p_path_keeps_what_vllms_rule_keeps(vendored):
    """(vLLM's Triton mask does not run in Triton's interpreter; the GPU bench checks its tokens against the same
    rule.)"""
    logits, k, p = rows()
    torch_mask = vendored["vllm_topk_topp"].apply_top_k_top_p_pytorch(logits.clone(), k, p)
    ref = kept_tokens_reference(logits, torch.ones(len(k)), k, p, torch.zeros(len(k)), RULES["vllm"])
    assert torch.equal(kept(torch_mask), ref)
    assert kept(torch_mask).sum(-1).tolist()[5] == 1 and kept(torch_mask).sum(-1).tolist()[4] == VOCAB


def test_the_dispatcher_stand_in_binds_arguments_by_vllms_naming_convention(vendored):
    """The stand-in for vLLM's launch helper: `logits` binds to LOGITS, `k` to K_PTR, LOGITS_STRIDE_0 comes from the
    bound tensor, the dispatch function's launch arguments win."""
    import triton
    import triton.language as tl

    @triton.jit
    def kernel(LOGITS, LOGITS_STRIDE_0, K_PTR, OUT, N: tl.constexpr, SCALE: tl.constexpr):
        row = tl.program_id(0)
        cols = tl.arange(0, N)
        x = tl.load(LOGITS + row * LOGITS_STRIDE_0 + cols)
        tl.store(OUT + row * N + cols, x * SCALE + tl.load(K_PTR + row))

    shim = vendored["vllm_topk_topp"]

    @shim.triton_kernel_dispatcher_with_warmup(kernel=kernel, warmup_inputs=None)
    def launch(logits, k, out, scale: float = 2.0):
        return (logits.shape[0],), dict(N=logits.shape[1], SCALE=scale, OUT=out)

    base = torch.arange(4 * 16, dtype=torch.float32).reshape(4, 16)
    logits = base[:, :8]  # a row stride of 16, not 8
    k = torch.tensor([1.0, 2.0, 3.0, 4.0])
    out = torch.empty(4, 8)
    launch(logits, k, out)
    torch.testing.assert_close(out, logits * 2.0 + k[:, None])


def test_temperature_min_p_and_gumbel_kernels(vendored):
    logits, _, _ = rows(seed=1)
    n = logits.shape[0]
    slots = torch.arange(n, dtype=torch.int64)
    temperature = torch.tensor([0.7, 1.0, 0.0, 2.0, 0.5, 1.3])
    min_p = torch.tensor([0.1, 0.0, 0.0, 0.05, 0.3, 0.0])
    x = logits.clone()
    vendored["vllm_gumbel"].apply_temperature(x, slots, temperature)
    scaled = torch.where((temperature == 0) | (temperature == 1), 1.0, temperature)
    torch.testing.assert_close(x, logits / scaled[:, None], rtol=1e-6, atol=0)
    vendored["vllm_min_p"].apply_min_p(x, slots, min_p)
    ref = kept_tokens_reference(logits, torch.where(temperature == 0, 1.0, temperature), torch.full((n,), -1),
                                torch.ones(n), min_p, RULES["vllm"])
    assert torch.equal(kept(x)[temperature != 0], ref[temperature != 0])
    seeds = torch.arange(n, dtype=torch.int64) * 1000 + 17
    positions = torch.full((n,), 9, dtype=torch.int64)
    tokens = vendored["vllm_gumbel"].gumbel_sample(x, slots, temperature, seeds, positions, apply_temperature=False,
                                                   is_drafting=False)
    assert tokens[2] == logits[2].argmax()  # temperature 0: argmax
    assert kept(x).gather(1, tokens[:, None]).all()
    again = vendored["vllm_gumbel"].gumbel_sample(x, slots, temperature, seeds, positions, apply_temperature=False,
                                                  is_drafting=False)
    assert torch.equal(tokens, again)  # keyed by seed and position


def test_the_benchs_vllm_route_draws_what_vllms_rule_keeps(vendored):
    """hotfuse bench's `vllm_torch` variant (vLLM's temperature, min-p, torch top-k/top-p and Gumbel kernels in
    vLLM's order) on CPU: every token it draws is one vLLM's rule keeps, at every bench parameter set."""
    from hotfuse.bench.filtered_sampling import PARAMETERS, batch, draws_off_rule, vllm_variants

    for params in PARAMETERS:
        logits, temps, k, p, m = batch(8, VOCAB, params, torch.device("cpu"))
        route = vllm_variants(vendored, logits, temps, k, p, m, params)["vllm_torch"]
        assert draws_off_rule(lambda i: route(), logits, temps, k, p, m, RULES["vllm"], draws=2) == 0, params
