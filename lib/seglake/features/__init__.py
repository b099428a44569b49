"""The features stage: silver + identity map -> ``gold.customer_features`` as of a date (the
computations are in ``seglake.behaviour``)."""

from seglake.features.stage import FeaturesError, FeaturesResult, run_features

__all__ = ["FeaturesError", "FeaturesResult", "run_features"]
