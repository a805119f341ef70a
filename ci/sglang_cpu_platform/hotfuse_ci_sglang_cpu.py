"""CI-only SGLang platform: the stock CPU platform with torch-native attention and native op dispatch.

Selected with SGLANG_PLATFORM=hotfuse_ci_cpu. It exists so the real SGLang engine (scheduler process,
model runner, plugin loading) runs on the project's CPU-only CI machines. It is not part of hotfuse.
"""

from sglang.srt.platforms.cpu import CpuSRTPlatform
from sglang.srt.platforms.device_mixin import PlatformEnum


class HotfuseCiCpuPlatform(CpuSRTPlatform):
    _enum = PlatformEnum.OOT

    def get_default_attention_backend(self) -> str:
        return "torch_native"

    def get_dispatch_key_name(self) -> str:
        return "native"


def activate() -> str:
    return "hotfuse_ci_sglang_cpu.HotfuseCiCpuPlatform"
