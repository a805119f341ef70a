"""Runs one real engine generation in this process and prints a JSON line with the token ids.

Used by the integration tests as a subprocess, so each run gets its own environment (HOTFUSE flags are
read once per process, in every engine process). Not a test module itself.

  python tests/engine_driver.py vllm   MODEL_DIR [--max-tokens N] [--temperature T] [--top-p P] [--load-format F]
  python tests/engine_driver.py sglang MODEL_DIR [--max-tokens N] [--temperature T] [--top-p P] [--load-format F]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

PROMPTS = [[11, 22, 33, 44, 55], [7, 8, 9]]


def run_vllm(model: str, max_tokens: int, temperature: float, top_p: float, load_format: str) -> list[list[int]]:
    from vllm import LLM, SamplingParams

    llm = LLM(
        model=model,
        load_format=load_format,
        skip_tokenizer_init=True,
        dtype="float32",
        max_model_len=128,
        max_num_seqs=4,
        enforce_eager=True,
        seed=0,
    )
    # no per-request seed: vLLM would give each request its own torch.Generator
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, detokenize=False,
                            ignore_eos=True)
    outputs = llm.generate([{"prompt_token_ids": p} for p in PROMPTS], params, use_tqdm=False)
    return [list(o.outputs[0].token_ids) for o in outputs]


def run_sglang(model: str, max_tokens: int, temperature: float, top_p: float, load_format: str) -> list[list[int]]:
    import sglang as sgl

    engine = sgl.Engine(
        model_path=model,
        device="cpu",
        load_format=load_format,
        skip_tokenizer_init=True,
        dtype="bfloat16",
        mem_fraction_static=0.05,
        max_total_tokens=2048,
        disable_cuda_graph=True,
        random_seed=0,
        log_level="warning",
    )
    try:
        params = {"max_new_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "ignore_eos": True}
        outputs = engine.generate(input_ids=PROMPTS, sampling_params=params)
        time.sleep(1.5)  # let the scheduler's hotfuse report thread flush its counters
        return [list(o["output_ids"]) for o in outputs]
    finally:
        engine.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("engine", choices=["vllm", "sglang"])
    parser.add_argument("model")
    parser.add_argument("--max-tokens", type=int, default=6)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--load-format", default="dummy", help="dummy (random, config only) or auto (saved weights)")
    args = parser.parse_args()
    run = run_vllm if args.engine == "vllm" else run_sglang
    tokens = run(args.model, args.max_tokens, args.temperature, args.top_p, args.load_format)
    print("HOTFUSE_DRIVER_RESULT " + json.dumps({"tokens": tokens, "pid": os.getpid()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
