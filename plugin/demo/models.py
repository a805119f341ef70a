"""The demo's embedded tiny models: configs shipped in the package, random weights made once and saved.

  python -m hotfuse.demo.models NAME OUT_DIR      write config.json + model.safetensors for NAME

No hub, no tokenizer: engines run them with `skip_tokenizer_init` and prompt token ids. Weights come from
a fixed seed, so every machine makes the same model. Gemma4: `per_expert_scale` is drawn away from its
initial 1.0 (a routing kernel that dropped the scale would otherwise go unnoticed), the router projection
gets well separated logits (top-k not decided by float noise), and `router.scale` is set so that
scale * hidden_size**-0.5 == 1 (SGLang's CPU router ignores it; vLLM and transformers do not).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib import resources
from pathlib import Path

from hotfuse.flags import parse_flags

SEED = 0
MODELS = ("gemma4-moe-tiny", "mixtral-tiny", "qwen3-tiny")


def config_dict(name: str) -> dict:
    if name not in MODELS:
        raise ValueError(f"unknown demo model {name!r}; known: {', '.join(MODELS)}")
    text = resources.files("hotfuse.demo").joinpath("configs", f"{name}.json").read_text()
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def cache_root() -> Path:
    return Path(parse_flags().demo_models or Path.home() / ".cache" / "hotfuse" / "demo-models")


def _initialise(model, config, seed: int) -> None:
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("router.per_expert_scale"):
                p.copy_(0.5 + 1.5 * torch.rand(p.shape, generator=g))
            elif name.endswith("router.scale"):
                p.fill_(config.hidden_size ** 0.5)
            elif name.endswith("router.proj.weight"):
                p.normal_(0.0, 1.0, generator=g)
            elif "experts." in name and p.dim() == 3:
                p.normal_(0.0, 0.02, generator=g)
        for name, b in model.named_buffers():
            if name.endswith("layer_scalar"):
                b.fill_(1.0)


def make_model(name: str, out: str | Path, seed: int = SEED) -> Path:
    """Write NAME's config and seeded random weights (safetensors) into OUT; returns OUT."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = config_dict(name)
    dtype = getattr(torch, cfg.pop("dtype"))
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).to(torch.float32).eval()
    _initialise(model, config, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    return out


def ensure_model(name: str) -> Path:
    """NAME's model directory under the cache, made on first use (keyed by its config and seed)."""
    key = hashlib.sha256(json.dumps([config_dict(name), SEED], sort_keys=True).encode()).hexdigest()[:10]
    path = cache_root() / f"{name}-{key}"
    if not (path / "config.json").exists():
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        make_model(name, tmp)
        try:
            tmp.replace(path)
        except OSError:  # another process made it first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(make_model(argv[0], argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
