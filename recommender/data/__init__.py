"""Datasets: the contract's folder format, its loader, and the simulator."""

from recommender.data.dataset import Dataset, FeatureSpec
from recommender.data.load import load_dataset
from recommender.data.schema import Schema

__all__ = ["Dataset", "FeatureSpec", "Schema", "load_dataset"]
