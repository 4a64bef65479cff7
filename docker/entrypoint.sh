#!/usr/bin/env bash
# Entrypoint of the compose stack's Airflow containers: what MWAA does before a component starts,
# then the official image's entrypoint (/entrypoint), which waits for the database and starts it.
#
#   1. The login: simple_auth_manager_users from AIRFLOW_LOGIN_USER (local.env), as `airflow standalone`
#      names its admin, unless AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS is set.
#   2. requirements.txt: warns when the mounted file differs from the one the image was built with
#      (on MWAA, a new requirements.txt has no effect until the environment is updated to it).
#   3. startup.sh: run in a child bash, as MWAA runs it; what it exports is kept for the component,
#      except the variables MWAA protects and the settings this stack cannot run without. A script
#      that fails, or runs past MWAA's limit (5 minutes), stops the component with its output shown.
set -euo pipefail

startup_script="${MWAA__CORE__STARTUP_SCRIPT_PATH:-/usr/local/airflow/startup/startup.sh}"
startup_timeout_seconds="${CLEAN_ZONE_STARTUP_TIMEOUT_SECONDS:-295}"
requirements="${MWAA__CORE__REQUIREMENTS_PATH:-/usr/local/airflow/requirements/requirements.txt}"
built_requirements_sha256="${CLEAN_ZONE_BUILT_REQUIREMENTS_SHA256_FILE:-/usr/local/airflow/requirements/requirements.txt.sha256}"
next_entrypoint="${CLEAN_ZONE_NEXT_ENTRYPOINT:-/entrypoint}"
component="${MWAA_AIRFLOW_COMPONENT:-local}"

log() { echo "clean-zone entrypoint [${component}]: $*" >&2; }

is_shell_bookkeeping() {
  case "$1" in
    _ | SHLVL | PWD | OLDPWD) return 0 ;;
  esac
  return 1
}

is_protected() {
  case "$1" in
    # MWAA's protected variables (those that exist here).
    MWAA__* | AIRFLOW_HOME | AIRFLOW_VERSION | AWS_DEFAULT_REGION | AWS_REGION | PYTHONPATH | PYTHONUNBUFFERED)
      return 0 ;;
    # Settings the stack cannot run without (MWAA's "essential" configuration).
    AIRFLOW__CORE__EXECUTOR | AIRFLOW__DATABASE__SQL_ALCHEMY_CONN | AIRFLOW__CELERY__BROKER_URL \
      | AIRFLOW__CELERY__RESULT_BACKEND | AIRFLOW__CORE__FERNET_KEY | AIRFLOW__API_AUTH__JWT_SECRET \
      | AIRFLOW__API__SECRET_KEY | AIRFLOW__CORE__EXECUTION_API_SERVER_URL | AIRFLOW__CORE__DAGS_FOLDER \
      | AIRFLOW__CORE__PLUGINS_FOLDER)
      return 0 ;;
  esac
  return 1
}

derive_login() {
  if [[ -z "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-}" && -n "${AIRFLOW_LOGIN_USER:-}" ]]; then
    export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW_LOGIN_USER}:admin"
  fi
}

check_requirements() {
  [[ -f "$requirements" && -f "$built_requirements_sha256" ]] || return 0
  local current built
  current="$(sha256sum "$requirements" | cut -d ' ' -f 1)"
  built="$(<"$built_requirements_sha256")"
  if [[ "$current" != "$built" ]]; then
    log "WARNING: requirements.txt changed since the image was built; the old packages are installed."
    log "WARNING: (MWAA: a new requirements.txt version not applied yet.) Apply it: docker compose up -d --build"
  fi
}

run_startup_script() {
  if [[ ! -f "$startup_script" ]]; then
    log "no startup script at ${startup_script}"
    return 0
  fi
  declare -A original_env=()
  local entry name value status=0 exports
  while IFS= read -r -d '' entry; do
    original_env["${entry%%=*}"]="${entry#*=}"
  done < <(env -0)

  exports="$(mktemp)"
  log "running startup script ${startup_script}"
  # A child bash, as on MWAA: an `exit` in the script ends only the child, and the EXIT trap still
  # records what the script exported. (Single quotes: the child expands these, not this shell.)
  # shellcheck disable=SC2016
  timeout --kill-after=5 "$startup_timeout_seconds" bash -c \
    '__cz_exports=$1; __cz_script=$2; set --; trap "env -0 > \"\$__cz_exports\"" EXIT; source "$__cz_script"' \
    startup "$exports" "$startup_script" || status=$?
  if ((status != 0)); then
    rm -f "$exports"
    if ((status == 124 || status == 137)); then
      log "startup script still running after ${startup_timeout_seconds}s (MWAA's limit: 5 minutes); not starting"
    else
      log "startup script failed (exit code ${status}); not starting"
    fi
    exit 1
  fi

  local applied=() refused=()
  while IFS= read -r -d '' entry; do
    name="${entry%%=*}"
    value="${entry#*=}"
    [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    is_shell_bookkeeping "$name" && continue
    if [[ -n "${original_env[$name]+set}" && "${original_env[$name]}" == "$value" ]]; then
      continue
    fi
    if is_protected "$name"; then
      refused+=("$name")
      continue
    fi
    export "${name}=${value}"
    applied+=("$name")
  done <"$exports"
  rm -f "$exports"
  # Names only: values may be secrets.
  log "startup script set: ${applied[*]:-nothing}"
  if ((${#refused[@]} > 0)); then
    log "WARNING: startup script may not change (kept as configured, as on MWAA): ${refused[*]}"
  fi
}

derive_login
check_requirements
run_startup_script
exec "$next_entrypoint" "$@"
