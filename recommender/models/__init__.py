"""Lead-level models: fit (scorecard, gradient boosting), channel prior, engagement,
calibration, and the LeadScorer that chooses between them on time-ordered validation."""

from recommender.models.base import FitModel
from recommender.models.calibration import Calibrator
from recommender.models.channel import ChannelPrior
from recommender.models.engagement import EngagementModel
from recommender.models.gbm import GradientBoosting
from recommender.models.scorecard import Scorecard
from recommender.models.selection import LeadScorer

__all__ = [
    "Calibrator",
    "ChannelPrior",
    "EngagementModel",
    "FitModel",
    "GradientBoosting",
    "LeadScorer",
    "Scorecard",
]
