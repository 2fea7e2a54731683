"""Scoring, orchestration and gates, in three folders that say what they are.

``eval/scoring/``  pure functions on parameters and windows (float64, one copy for every framework):
                   pseudo-likelihood, the AIS/RAISE log-likelihood bracket, note statistics, set comparisons,
                   intervals and equivalence tests.
``eval/bench/``    the harness: typed tasks, executors, the worker process, the run folder, rows, environment.
``eval/gates/``    the checks a CI runs: the sample-quality gate and the throughput check.
``eval/timing/``   the roofline arithmetic, the speed table, scikit-learn's reference and the scaling grid.
``eval/config/`` profiles as typed, validated configuration.
"""
