"""Offline evaluation: metrics of the three models and the readable `evaluate` report.

* :mod:`recommender.evaluation.metrics`: pure metric functions (AUC, gains, calibration,
  PSI, hit rates and MRR, baselines, bootstrap intervals, the leakage screen, routing
  policy tables).
* :mod:`recommender.evaluation.report`: the plain-text report, the contract-key check and
  the JSON conversion of the ``evaluate`` result.
"""
