"""Loss-space task weightings. Each lives in its own file and registers under its stem."""

from mtlkit.weighting._base import StepContext, Weighting, WeightingResult
from mtlkit.weighting.equal import Equal
from mtlkit.weighting.static import Static

__all__ = ["Equal", "Static", "StepContext", "Weighting", "WeightingResult"]
