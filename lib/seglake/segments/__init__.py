"""Segments: rule segments and tags over the feature catalogue (clustering comes next)."""

from seglake.segments.rules import RuleError, RuleSet, check_rules, load_rules, rule_segments
from seglake.segments.stage import (
    RULE_SEGMENTS,
    SegmentError,
    SegmentResult,
    checked_rules,
    run_segment,
)

__all__ = ["RULE_SEGMENTS", "RuleError", "RuleSet", "SegmentError", "SegmentResult",
           "check_rules", "checked_rules", "load_rules", "rule_segments", "run_segment"]
