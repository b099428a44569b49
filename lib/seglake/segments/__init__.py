"""Segments: rule segments and tags over the feature catalogue, and MLlib customer clusters."""

from seglake.segments.rules import RuleError, RuleSet, check_rules, load_rules, rule_segments
from seglake.segments.stage import (
    ClusterResult,
    SegmentError,
    SegmentResult,
    checked_rules,
    run_segment,
)

__all__ = ["ClusterResult", "RuleError", "RuleSet",
           "SegmentError", "SegmentResult", "check_rules", "checked_rules", "load_rules",
           "rule_segments", "run_segment"]
