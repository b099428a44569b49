"""Gold customer features, point-in-time: RFM, email engagement, browsing, funnel and cart
abandonment, intent, engagement score, tenure and consent — declared once in the catalogue."""

from seglake.features.build import customer_features
from seglake.features.catalogue import Feature, catalogue_markdown, feature_catalogue
from seglake.features.inputs import Sources
from seglake.features.stage import FEATURES, FeaturesError, FeaturesResult, run_features

__all__ = ["FEATURES", "Feature", "FeaturesError", "FeaturesResult", "Sources",
           "catalogue_markdown", "customer_features", "feature_catalogue", "run_features"]
