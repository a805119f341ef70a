"""CUDA-graph capture for the GPU tests."""

import torch


def capture(fn):
    """Runs fn once on a side stream (the warm-up torch asks for before a capture), then captures a second call
    in a CUDA graph. Returns (the graph, what the captured call returned)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        result = fn()
    return graph, result
