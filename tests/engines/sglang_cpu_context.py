"""Process-wide SGLang state that layer-level scripts need on CPU (no engine): a gloo world of one,
published server args (0.5.16+ runtime context, or 0.5.11-0.5.15 global server args).

Imported by the subprocess scripts of tests/engines/test_sglang_adapters.py after `load_plugins()`.
"""

import os

os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))


def init_sglang_cpu(**server_arg_fields):
    """Set up SGLang's distributed and config state on CPU; `server_arg_fields` are set on ServerArgs as is."""
    from sglang.srt.distributed.parallel_state import init_distributed_environment, initialize_model_parallel
    from sglang.srt.server_args import ServerArgs

    init_distributed_environment(world_size=1, rank=0, local_rank=0, backend="gloo")
    server_args = ServerArgs(model_path="dummy", tp_size=1, ep_size=1, pp_size=1, device="cpu")
    for name, value in server_arg_fields.items():
        setattr(server_args, name, value)
    try:  # 0.5.16+: a published runtime context
        from sglang.srt.distributed import parallel_state
        from sglang.srt.runtime_context import SpawnRanks, get_parallel, publish, reset_context

        reset_context()
        publish(server_args, role="test", ranks=SpawnRanks(world_rank=0))
        get_parallel().override_permanently(world_group=parallel_state._WORLD)
    except ImportError:  # 0.5.11-0.5.15: global server args
        from sglang.srt.server_args import set_global_server_args_for_scheduler

        set_global_server_args_for_scheduler(server_args)
    initialize_model_parallel(backend="gloo")
    return server_args
