"""The Airflow-facing layer: task callables, the retry policy, the failure notifier and DAG defaults.

Everything else in :mod:`clean_zone` is plain Python that never imports
Airflow (``tests/unit/core/test_no_airflow.py`` proves it); the modules here
translate between Airflow's context and that core.
"""
