"""Bronze -> silver: typed tables, named rules and quarantine, quality gates, privacy."""

from seglake.refine.quality import QualityError
from seglake.refine.stage import RefineError, run_refine

__all__ = ["QualityError", "RefineError", "run_refine"]
