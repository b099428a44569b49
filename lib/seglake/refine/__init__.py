"""Bronze -> silver: typed tables, named rules and quarantine, quality gates, privacy."""

from seglake.refine.quality import QualityError
from seglake.refine.stage import RefineError, mapping_problems, run_refine, sampled_problems

__all__ = ["QualityError", "RefineError", "mapping_problems", "run_refine", "sampled_problems"]
