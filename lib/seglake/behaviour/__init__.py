"""Behavioural features as pure, point-in-time DataFrame functions — RFM, email engagement,
browsing, funnel and cart abandonment, intent, engagement score, tenure and consent — shared by
the features stage (which writes them) and the score stage (which trains on past dates)."""

from seglake.behaviour.build import customer_features, features_of
from seglake.behaviour.catalogue import Feature, catalogue_markdown, feature_catalogue
from seglake.behaviour.inputs import Sources, activity, cutoff, end_of_data, silver_sources

__all__ = ["Feature", "Sources", "activity", "catalogue_markdown", "customer_features",
           "cutoff", "end_of_data", "feature_catalogue", "features_of", "silver_sources"]
