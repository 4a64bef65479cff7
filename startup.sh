#!/usr/bin/env bash
# MWAA startup script: MWAA runs it in every container before Airflow starts (and the
# docker-compose stack runs it the same way). MWAA *sources* it from its own bash wrapper, which
# then exports the environment to Airflow, so: no `exit` (it would end the wrapper), no `set -e` /
# `set -u` (they would change the wrapper's shell), and keep it quick, idempotent, and silent about
# secrets. MWAA_AIRFLOW_COMPONENT names the container: scheduler (on Airflow 3 it also runs the
# dag-processor and the triggerer), worker, webserver (the Airflow 3 api-server), or hybrid
# (scheduler and worker together).
#
# Settings that DAG files need while they are parsed (schedule, sensor and
# retry knobs) are read from the environment, so set any you change here.
# Everything else can also live in Airflow Variables or Secrets Manager.
# Names and defaults: README "Configuration".

echo "clean-zone startup: ${MWAA_AIRFLOW_COMPONENT:-local} on $(python3 --version 2>&1)"

# Example: poll the landing prefix every 30 s (the default). Uncomment to change.
# export AIRFLOW_VAR_CLEAN_ZONE_SENSOR_POKE_INTERVAL_SECONDS=30
