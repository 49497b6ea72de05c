"""Gradient-space aggregators: K×P Jacobian -> P-vector. One file per method."""

from mtlkit.aggregation._base import Aggregator, GramianWeightedAggregator
from mtlkit.aggregation.mean import Mean

__all__ = ["Aggregator", "GramianWeightedAggregator", "Mean"]
