"""Scores: purchase propensity and churn by random forest, trained by time split."""

from seglake.scoring.stage import SCORES, ModelResult, ScoreError, ScoreResult, run_score

__all__ = ["SCORES", "ModelResult", "ScoreError", "ScoreResult", "run_score"]
