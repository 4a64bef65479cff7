#!/usr/bin/env bash
# MWAA startup script: MWAA runs it on every scheduler, worker and web server
# before Airflow starts (and the docker-compose stack runs it the same way).
# Keep it quick and idempotent; it must not print secrets.
#
# Settings that DAG files need while they are parsed (schedule, sensor and
# retry knobs) are read from the environment, so set any you change here.
# Everything else can also live in Airflow Variables or Secrets Manager.
# Names and defaults: README "Configuration".
set -euo pipefail

echo "clean-zone startup: ${MWAA_AIRFLOW_COMPONENT:-local} on $(python3 --version 2>&1)"

# Example: poll the landing prefix every 30 s (the default). Uncomment to change.
# export AIRFLOW_VAR_CLEAN_ZONE_SENSOR_POKE_INTERVAL_SECONDS=30
