"""leadrank: a personalised lead-to-rep recommender for sales teams.

The library knows no web and no database. Start from :func:`recommender.data.load_dataset`
and :func:`recommender.pipeline.train`.
"""

__version__ = "0.1.0"
