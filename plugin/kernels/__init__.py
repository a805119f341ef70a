"""Fused kernels with their torch references. Kernels never import an engine."""
