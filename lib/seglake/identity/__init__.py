"""Identity resolution: normalisation, probabilistic linkage (Splink on Spark), stable
customer keys, golden records and identity stitching."""

from seglake.identity.stage import ResolveError, ResolveResult, run_resolve

__all__ = ["ResolveError", "ResolveResult", "run_resolve"]
