"""Synthetic landing data with ground truth: ``seglake demo generate``."""

from seglake.demo.generate import SCALES, DemoError, DemoResult, DemoSpec, generate, resolve_scale

__all__ = ["SCALES", "DemoError", "DemoResult", "DemoSpec", "generate", "resolve_scale"]
