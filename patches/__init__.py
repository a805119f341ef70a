"""Engine adapters: `hotfuse.patches.sglang.*` and `hotfuse.patches.vllm.*`.

Each adapter module declares its `TARGETS` (engine functions, parameters, validated fingerprints) and
a `plan(mode, release) -> AdapterPlan`. Adapters route calls; they never hold kernel math.
"""
