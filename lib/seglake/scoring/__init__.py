"""Scores: purchase propensity and churn by random forest, trained by time split."""

from seglake.scoring.stage import ModelResult, ScoreError, ScoreResult, run_score

__all__ = ["ModelResult", "ScoreError", "ScoreResult", "run_score"]
