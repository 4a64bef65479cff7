#!/usr/bin/env bash
# Create or refresh the project's virtual environment (.venv at the repo root).
#
#   bash scripts/bootstrap.sh        # or: source scripts/bootstrap.sh
#
# Idempotent. Finds Python 3.12 (on PATH as python3.12, else under pyenv),
# creates .venv if it is missing (or built on another Python), and installs
# Airflow 3.3.1, the MWAA-preinstalled providers, requirements.txt and the dev
# tools under the official Airflow constraints. A stamp file (.venv/.install-stamp)
# holds a hash of the requirement files and the Python version: when nothing
# changed the whole script returns in a fraction of a second.
#
# Exit codes: 0 ready, 1 install failed (the tail of .state/pip-install.log is
# shown), 2 no Python 3.12 found, no working venv module, or a usage error.
#
# When sourced it returns instead of exiting, leaves the caller's shell options
# alone, and sets VENV_PYTHON to the environment's interpreter.

_cz_repo_root() {
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)" || return 1
    (cd "$here/.." && pwd)
}

# True when "$1" runs and is CPython 3.12.
_cz_is_python312() {
    [ -n "$1" ] && [ -x "$1" ] || return 1
    "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' >/dev/null 2>&1
}

# Print the first working Python 3.12 interpreter; nothing (and status 1) if none.
_cz_find_python312() {
    local candidate pyenv_root
    candidate="$(command -v python3.12 2>/dev/null || true)"
    # A pyenv shim for python3.12 exists even when no 3.12 is installed, so every
    # candidate is run, not just located.
    if _cz_is_python312 "$candidate"; then
        echo "$candidate"
        return 0
    fi
    local roots=()
    if command -v pyenv >/dev/null 2>&1; then
        pyenv_root="$(pyenv root 2>/dev/null || true)"
        [ -n "$pyenv_root" ] && roots+=("$pyenv_root")
    fi
    roots+=("$HOME/.pyenv")
    local root
    for root in "${roots[@]}"; do
        local found=()
        for candidate in "$root"/versions/3.12*/bin/python; do
            [ -x "$candidate" ] && found+=("$candidate")
        done
        [ "${#found[@]}" -gt 0 ] || continue
        # Newest 3.12.x first.
        while IFS= read -r candidate; do
            if _cz_is_python312 "$candidate"; then
                echo "$candidate"
                return 0
            fi
        done < <(printf '%s\n' "${found[@]}" | sort -r -V)
    done
    return 1
}

# sha256 over the Python version and the files that decide what is installed.
_cz_install_hash() {
    local python="$1"
    shift
    "$python" - "$@" <<'PY'
import hashlib
import sys

digest = hashlib.sha256(sys.version.encode())
for path in sys.argv[1:]:
    digest.update(b"\0" + path.encode() + b"\0")
    with open(path, "rb") as handle:
        digest.update(handle.read())
print(digest.hexdigest())
PY
}

# Copy pip's output (stdin) to the log "$1"; every 15 s print how far it got, so a
# first install (minutes, and long silent stretches in pip itself) shows it is alive.
_cz_pip_progress() {
    local log="$1" started="$2" line found=0 installing="" status last=$SECONDS
    while true; do
        # In an `if`, so a caller's `set -e` (when sourced) does not end the loop on a timeout.
        if IFS= read -r -t 5 line; then status=0; else status=$?; fi
        if [ "$status" -eq 0 ]; then
            printf '%s\n' "$line" >>"$log"
            case "$line" in
                Collecting\ * | Processing\ * | Requirement\ already\ satisfied:*) found=$((found + 1)) ;;
                Installing\ collected\ packages:*)
                    installing="$(printf '%s' "${line#*:}" | tr ',' '\n' | grep -c .)" ;;
            esac
        elif [ "$status" -le 128 ]; then
            [ -n "$line" ] && printf '%s' "$line" >>"$log"
            break  # end of pip's output
        elif [ -n "$line" ]; then
            printf '%s' "$line" >>"$log"  # a timeout mid-line keeps what was read
        fi
        if [ $((SECONDS - last)) -ge 15 ]; then
            last=$SECONDS
            if [ -n "$installing" ]; then
                echo "  ... $((SECONDS - started)) s: installing $installing packages"
            else
                echo "  ... $((SECONDS - started)) s: resolving, $found packages found"
            fi
        fi
    done
}

# Serialise slow bootstraps (two terminals on a fresh clone would otherwise run
# two pip installs into one .venv). mkdir is atomic everywhere, flock is not.
_cz_lock() {
    local lock="$1" owner announced=""
    while ! mkdir "$lock" 2>/dev/null; do
        owner="$(cat "$lock/pid" 2>/dev/null || true)"
        if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then
            rm -rf "$lock"  # its owner is gone
            continue
        fi
        if [ -z "$announced" ]; then
            echo "Waiting for another bootstrap${owner:+ (pid $owner)} to finish..."
            announced=1
        fi
        sleep 1
    done
    echo "$$" >"$lock/pid"
}

_cz_bootstrap() {
    local root venv python stamp_file state
    root="$(_cz_repo_root)" || return 1
    venv="$root/.venv"
    python="$venv/bin/python"
    stamp_file="$venv/.install-stamp"
    state="$root/.state"
    local inputs=(
        "$root/constraints/airflow-3.3.1-python-3.12.txt"
        "$root/requirements-mwaa-base.txt"
        "$root/requirements.txt"
        "$root/requirements-dev.txt"
        "$root/pyproject.toml"
    )
    local input
    for input in "${inputs[@]}"; do
        if [ ! -f "$input" ]; then
            echo "bootstrap: missing $input (is this a complete checkout?)" >&2
            return 2
        fi
    done

    # Fast path, one interpreter start: the stamp matches the requirement files
    # and the venv's Python version (a stamp is only ever written by a 3.12 venv).
    if [ -f "$stamp_file" ] &&
        [ "$(cat "$stamp_file")" = "$(_cz_install_hash "$python" "${inputs[@]}" 2>/dev/null)" ]; then
        VENV_PYTHON="$python"
        return 0
    fi

    mkdir -p "$state"
    local lock="$state/bootstrap.lock" status
    _cz_lock "$lock"
    _cz_prepare "$root" "${inputs[@]}"
    status=$?
    rm -rf "$lock"
    # For callers that source this file.
    # shellcheck disable=SC2034
    [ "$status" -eq 0 ] && VENV_PYTHON="$python"
    return "$status"
}

# Create .venv if needed and install, unless another bootstrap just did.
_cz_prepare() {
    local root="$1"
    shift
    local inputs=("$@")
    local venv="$root/.venv"
    local python="$venv/bin/python"
    local stamp_file="$venv/.install-stamp"
    local log="$root/.state/pip-install.log"
    local base found wanted

    if [ -e "$venv" ] && ! _cz_is_python312 "$python"; then
        found="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo "a broken interpreter")"
        echo "bootstrap: .venv has Python $found, this project needs 3.12: recreating .venv"
        rm -rf "$venv"
    fi

    if [ ! -e "$venv" ]; then
        if ! base="$(_cz_find_python312)"; then
            cat >&2 <<'MSG'
bootstrap: Python 3.12 not found (looked for python3.12 on PATH, then under pyenv).
Install it, then run this again. For example:
  pyenv install 3.12          (https://github.com/pyenv/pyenv)
  sudo apt install python3.12 python3.12-venv     (Debian/Ubuntu)
  brew install python@3.12                         (macOS)
MSG
            return 2
        fi
        echo "Creating .venv with $base ($("$base" -c 'import platform; print(platform.python_version())'))..."
        if ! "$base" -m venv "$venv"; then
            rm -rf "$venv"
            echo "bootstrap: '$base -m venv' failed; on Debian/Ubuntu install python3.12-venv" >&2
            return 2
        fi
    fi

    wanted="$(_cz_install_hash "$python" "${inputs[@]}")" || return 1
    if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$wanted" ]; then
        return 0  # another bootstrap finished while we waited
    fi

    # MWAA needs requirements.txt's --constraint URL; locally the same file is
    # vendored under constraints/, so the URL is dropped rather than fetched.
    local requirements_local="$root/.state/requirements-local.txt"
    grep -v -E '^[[:space:]]*(--constraint|-c)([[:space:]=]|$)' "$root/requirements.txt" >"$requirements_local" || true

    if [ -f "$stamp_file" ]; then
        echo "Requirements changed: updating .venv (log: .state/pip-install.log)..."
    else
        echo "Installing Airflow 3.3.1 and dev tools into .venv (first run takes a few minutes)..."
    fi
    local started=$SECONDS
    # pip's own output (including this machine's find-links warnings) goes to the
    # log; the terminal gets our progress lines and, on failure, the log's tail.
    : >"$log"
    "$python" -m pip install \
        -c "${inputs[0]}" \
        -r "$root/requirements-mwaa-base.txt" \
        -r "$requirements_local" \
        -r "$root/requirements-dev.txt" 2>&1 | _cz_pip_progress "$log" "$started"
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then
        echo "bootstrap: pip install failed; last lines of .state/pip-install.log:" >&2
        tail -n 40 "$log" >&2
        return 1
    fi
    # The project itself, editable: the tools under src/ and dags/clean_zone become importable
    # by name (no sys.path edits, no PYTHONPATH), and edits take effect without reinstalling.
    if ! "$python" -m pip install --no-deps -e "$root" >>"$log" 2>&1; then
        echo "bootstrap: installing the project (pip install -e .) failed; last lines of .state/pip-install.log:" >&2
        tail -n 40 "$log" >&2
        return 1
    fi
    echo "$wanted" >"$stamp_file"
    echo ".venv ready ($((SECONDS - started)) s)."
    return 0
}

_cz_usage() {
    cat <<'USAGE'
Usage: bash scripts/bootstrap.sh      (or: source scripts/bootstrap.sh, which sets VENV_PYTHON)

Create or refresh .venv: Python 3.12, Airflow 3.3.1, the MWAA-preinstalled providers,
requirements.txt and the dev tools under the official Airflow constraints, then this
project in editable mode. Idempotent: returns at once when nothing changed. The first
install takes a few minutes and prints its progress; pip's log is .state/pip-install.log.

Exit codes: 0 ready, 1 install failed, 2 no Python 3.12, no working venv module, or a usage error.
USAGE
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    _cz_bootstrap
    return $?
fi
set -uo pipefail
case "${1:-}" in
    -h | --help)
        _cz_usage
        exit 0
        ;;
    "") ;;
    *)
        echo "bootstrap: unknown argument '$1'" >&2
        _cz_usage >&2
        exit 2
        ;;
esac
_cz_bootstrap
exit $?
