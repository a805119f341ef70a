"""Runs one real engine in this process: greedy generation (timed), then optional sampled requests; prints
one JSON line with the token ids and timings.

  python -m hotfuse.demo.driver vllm|sglang MODEL_DIR [--max-tokens N] [--temperature T] [--top-p P]
                                [--top-k K] [--min-p Q] [--greedy-first] [--seed S] [--prompts N]
                                [--load-format auto|dummy] [--sampled N] [--compile [0|1]]
                                [--pass-config JSON]

Used by `hotfuse demo` and the integration tests as a subprocess, so each run gets its own environment
(hotfuse reads its flags once per process, in every engine process).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

PROMPTS = [[11, 22, 33, 44, 55], [7, 8, 9]]
SAMPLED_TEMPERATURE = 0.8
# the sampled requests alternate between a plain temperature and Qwen3's generation_config defaults (what an engine
# applies to every request that sets nothing), so the sampler's filtered path has work too
QWEN3_DEFAULTS = {"temperature": 0.6, "top_k": 20, "top_p": 0.95, "min_p": 0.0}


def _vllm(model: str, load_format: str, compile_model: bool = False, pass_config: dict | None = None):
    from vllm import LLM, SamplingParams

    # enforce_eager unless asked to compile: vLLM then torch.compiles the model (on CPU: one Dynamo trace, inductor)
    extra = {"compilation_config": {"pass_config": pass_config}} if pass_config else {}
    llm = LLM(model=model, load_format=load_format, skip_tokenizer_init=True, dtype="float32", max_model_len=128,
              max_num_seqs=4, enforce_eager=not compile_model, seed=0, **extra)

    def generate(prompts, max_tokens, sampling):
        params = [SamplingParams(max_tokens=max_tokens, detokenize=False, ignore_eos=True, **s) for s in sampling]
        outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outputs]

    return generate, lambda: None


def _sglang(model: str, load_format: str, compile_model: bool = False, pass_config: dict | None = None):
    import sglang as sgl

    engine = sgl.Engine(model_path=model, device="cpu", load_format=load_format, skip_tokenizer_init=True,
                        dtype="bfloat16", mem_fraction_static=0.05, max_total_tokens=2048, disable_cuda_graph=True,
                        random_seed=0, log_level="warning")

    def generate(prompts, max_tokens, sampling):
        params = [{"max_new_tokens": max_tokens, "ignore_eos": True, **s} for s in sampling]
        return [list(o["output_ids"]) for o in engine.generate(input_ids=prompts, sampling_params=params)]

    def shutdown():
        time.sleep(1.5)  # let the scheduler's hotfuse report thread flush its counters
        engine.shutdown()

    return generate, shutdown


def _cpu_engine_defaults(engine: str) -> None:
    """Settings a CPU-only machine needs (left alone where the caller set them)."""
    import torch

    if torch.cuda.is_available():
        return
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")   # GiB; vLLM's default asks for most of the RAM
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    if engine == "sglang" and "SGLANG_PLATFORM" not in os.environ:
        from importlib.metadata import entry_points

        names = {ep.name for ep in entry_points(group="sglang.srt.platforms")}
        if "hotfuse_ci_cpu" in names:  # ci/sglang_cpu_platform: SGLang's own CPU platform needs AMX/IPEX
            os.environ["SGLANG_PLATFORM"] = "hotfuse_ci_cpu"


def _flag(value: str) -> bool:
    """'--compile', '--compile 1' or '--compile True' (as the tests' run_engine writes options) turn it on."""
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected 0 or 1, got {value!r}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("engine", choices=["vllm", "sglang"])
    parser.add_argument("model")
    parser.add_argument("--max-tokens", type=int, default=6)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=-1, help="-1: off")
    parser.add_argument("--min-p", type=float, default=0.0)
    parser.add_argument("--greedy-first", nargs="?", const="1", default="0", type=_flag,
                        help="the first prompt greedy (temperature 0), the others with the sampling options: "
                        "a mixed batch")
    parser.add_argument("--seed", type=int, default=None,
                        help="a per-request seed, S + the prompt's index (vLLM: a torch.Generator each; SGLang: its "
                        "sampling_seed)")
    parser.add_argument("--prompts", type=int, default=len(PROMPTS), help="the first N prompts only")
    parser.add_argument("--load-format", default="dummy", help="dummy (random, config only) or auto (saved weights)")
    parser.add_argument("--sampled", type=int, default=0,
                        help=f"then run this many sampled requests: temperature {SAMPLED_TEMPERATURE} and Qwen3's "
                        "defaults (temperature 0.6, top-k 20, top-p 0.95), alternately")
    parser.add_argument("--compile", nargs="?", const="1", default="0", type=_flag,
                        help="vLLM: torch.compile the model instead of enforce_eager (default: eager); "
                        "SGLang: ignored")
    parser.add_argument("--pass-config", type=json.loads, default=None,
                        help="vLLM: JSON object for compilation_config.pass_config, "
                        "e.g. '{\"fuse_norm_quant\": true}'; SGLang: ignored")
    args = parser.parse_args()
    _cpu_engine_defaults(args.engine)
    start = time.perf_counter()
    generate, shutdown = (_vllm if args.engine == "vllm" else _sglang)(args.model, args.load_format, args.compile,
                                                                       args.pass_config)
    started = time.perf_counter()
    try:
        options = {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k, "min_p": args.min_p}
        sampling = [({**options, "temperature": 0.0} if i == 0 and args.greedy_first else options)
                    for i in range(args.prompts)]
        if args.seed is not None:
            key = "seed" if args.engine == "vllm" else "sampling_seed"
            sampling = [{**s, key: args.seed + i} for i, s in enumerate(sampling)]
        tokens = generate(PROMPTS[:args.prompts], args.max_tokens, sampling)
        generated = time.perf_counter()
        plain = {"temperature": SAMPLED_TEMPERATURE, "top_p": 1.0, "top_k": -1, "min_p": 0.0}
        sampled = generate([PROMPTS[i % len(PROMPTS)] for i in range(args.sampled)], args.max_tokens,
                           [plain if i % 2 else QWEN3_DEFAULTS for i in range(args.sampled)]) if args.sampled else []
    finally:
        shutdown()
    print("HOTFUSE_DRIVER_RESULT " + json.dumps({
        "tokens": tokens, "sampled": sampled, "pid": os.getpid(),
        "startup_s": started - start, "generate_s": generated - started,
        "generated_tokens": sum(len(t) for t in tokens),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
