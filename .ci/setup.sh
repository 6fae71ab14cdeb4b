# shellcheck shell=bash
# kafkaref's machine set-up, shared by ./kafkaref and ./run-tests (and so by .ci/run).
#
# Source it, then call `kr_setup`:
#
#     source "$KR_ROOT/.ci/setup.sh"   # KR_ROOT: the repository top level (set here if unset)
#     kr_setup || exit 2
#
# kr_setup makes sure that, in order:
#   1. the virtualenv .venv exists in the repository and runs Python >= 3.11 (a broken
#      or too old one is recreated);
#   2. the project is installed in it: `pip install -e '.[test,chaos]'` when the venv is
#      new, pyproject.toml is newer than the stamp file .venv/.kafkaref-installed, or the
#      set of top-level packages with an __init__.py changed since (see KR_PACKAGES);
#   3. the Debian packages the project needs are installed (zookeeper, kcat, and
#      debootstrap, which makes the chaos experiments' base image). As root it
#      runs `apt-get update` once and then `apt-get install`; otherwise it tries `sudo -n`;
#      failing both it says what to install and goes on (only what needs them will fail).
# Progress lines go to stderr ("kafkaref: ..."); the installers' own output is kept quiet,
# and shown only when they fail. Nothing is printed when there is nothing to do.
#
# Environment:
#   KAFKAREF_PYTHON=/path/to/python3   the interpreter for a new .venv (default: the first
#                                      of python3, python3.13, python3.12, python3.11 on
#                                      PATH that is >= 3.11 and has venv/ensurepip)
#   KAFKAREF_NO_APT=1                  never install Debian packages (only report them)
#   CI=true                            a failed Debian install fails the set-up instead of
#                                      being a warning
#
# Concurrent runs (say ./run-tests and ./kafkaref started together) are serialised with
# flock on this file, so two of them never build the same venv at once.

KR_ROOT="${KR_ROOT:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)}"
KR_VENV="$KR_ROOT/.venv"
KR_STAMP="$KR_VENV/.kafkaref-installed"
KR_EXTRAS="test,chaos"
KR_DEBS=(zookeeper kcat debootstrap)
# The top-level packages (as in pyproject's [tool.setuptools.packages.find] include). An
# editable install only maps the packages that existed when it ran, so the stamp records
# which have an __init__.py, and a new one triggers a reinstall.
KR_PACKAGES=(spec impl harness chaos)
KR_MIN_PY="3.11"

kr_log() { printf 'kafkaref: %s\n' "$*" >&2; }
kr_err() { printf 'kafkaref: error: %s\n' "$*" >&2; }

kr_is_ci() { [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; }

# kr_py_ok PYTHON -> 0 if PYTHON runs and is >= 3.11.
kr_py_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

# kr_py_can_venv PYTHON -> 0 if PYTHON can make a venv with pip in it.
kr_py_can_venv() {
    "$1" -c 'import venv, ensurepip' >/dev/null 2>&1
}

# How to run a privileged command: "" as root, "sudo -n" where that works, else fail.
kr_priv() {
    if [[ "$(id -u)" -eq 0 ]]; then
        KR_SUDO=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        KR_SUDO=(sudo -n)
    else
        return 1
    fi
}

KR_APT_UPDATED=0

# kr_apt_install PKG... -> installs Debian packages quietly; 1 if that is not possible.
kr_apt_install() {
    local log rc
    command -v apt-get >/dev/null 2>&1 || return 1
    kr_priv || return 1
    log="$(mktemp "${TMPDIR:-/tmp}/kafkaref-apt.XXXXXX")"
    local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
    if [[ "$KR_APT_UPDATED" -eq 0 ]]; then
        kr_log "apt-get update…"
        if ! "${KR_SUDO[@]}" "${apt[@]}" update >"$log" 2>&1; then
            kr_err "apt-get update failed:"
            tail -n 20 "$log" >&2
            rm -f "$log"
            return 1
        fi
        KR_APT_UPDATED=1
    fi
    kr_log "apt-get install $*…"
    "${KR_SUDO[@]}" "${apt[@]}" install -y --no-install-recommends "$@" >"$log" 2>&1
    rc=$?
    if [[ $rc -ne 0 ]]; then
        kr_err "apt-get install $* failed:"
        tail -n 20 "$log" >&2
    fi
    rm -f "$log"
    return "$rc"
}

# kr_deb_installed PKG -> 0 if the Debian package PKG is installed.
kr_deb_installed() {
    local status
    status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" || return 1
    [[ "$status" == "install ok installed" ]]
}

kr_ensure_debs() {
    local -a missing=()
    local pkg
    if ! command -v dpkg-query >/dev/null 2>&1; then
        # Not Debian: look for what the packages provide instead.
        command -v kcat >/dev/null 2>&1 || missing+=(kcat)
        command -v debootstrap >/dev/null 2>&1 || [[ -x /usr/sbin/debootstrap ]] \
            || missing+=(debootstrap)
        [[ -x /usr/share/zookeeper/bin/zkServer.sh ]] || command -v zkServer.sh >/dev/null 2>&1 \
            || missing+=(zookeeper)
        if [[ ${#missing[@]} -gt 0 ]]; then
            kr_log "warning: not a Debian system; install these yourself: ${missing[*]}" \
                "(commands that need them will fail until then)"
        fi
        return 0
    fi
    for pkg in "${KR_DEBS[@]}"; do
        kr_deb_installed "$pkg" || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ "${KAFKAREF_NO_APT:-}" != "1" ]] && kr_apt_install "${missing[@]}"; then
        return 0
    fi
    if kr_is_ci; then
        kr_err "could not install the Debian packages: ${missing[*]}"
        return 1
    fi
    kr_log "warning: missing Debian packages: ${missing[*]}"
    kr_log "  install them with: sudo apt-get install --no-install-recommends ${missing[*]}"
    kr_log "  (going on: only the commands that need them will fail)"
    return 0
}

# kr_find_python -> prints the interpreter to build .venv with.
kr_find_python() {
    local cand ver
    local -a cands=()
    local -a too_old=() no_venv=()
    if [[ -n "${KAFKAREF_PYTHON:-}" ]]; then
        cands=("$KAFKAREF_PYTHON")
    else
        cands=(python3 python3.13 python3.12 python3.11)
    fi
    for cand in "${cands[@]}"; do
        command -v "$cand" >/dev/null 2>&1 || continue
        if ! kr_py_ok "$cand"; then
            too_old+=("$cand")
            continue
        fi
        if kr_py_can_venv "$cand"; then
            command -v "$cand"
            return 0
        fi
        no_venv+=("$cand")
    done
    # A Debian Python >= 3.11 without venv support: python3.X-venv brings it.
    for cand in "${no_venv[@]}"; do
        ver="$("$cand" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
        if [[ "${KAFKAREF_NO_APT:-}" != "1" ]] && kr_apt_install "python${ver}-venv" \
            && kr_py_can_venv "$cand"; then
            command -v "$cand"
            return 0
        fi
        kr_err "$cand ($ver) cannot create a virtualenv: install python${ver}-venv"
        return 1
    done
    if [[ ${#too_old[@]} -gt 0 ]]; then
        kr_err "kafkaref needs Python >= $KR_MIN_PY; found only older ones (${too_old[*]})."
    else
        kr_err "kafkaref needs Python >= $KR_MIN_PY and found none (${cands[*]})."
    fi
    kr_err "install python3.11 (or newer), or point KAFKAREF_PYTHON at one"
    return 1
}

kr_ensure_venv() {
    local py
    if [[ -e "$KR_VENV" ]]; then
        if kr_py_ok "$KR_VENV/bin/python" && [[ -x "$KR_VENV/bin/pip" ]]; then
            return 0
        fi
        kr_log "$KR_VENV is broken or older than Python $KR_MIN_PY; recreating it…"
        rm -rf -- "$KR_VENV"
    fi
    py="$(kr_find_python)" || return 1
    kr_log "creating virtualenv .venv with $py ($("$py" -c 'import sys; print(sys.version.split()[0])'))…"
    if ! "$py" -m venv "$KR_VENV" >&2; then
        kr_err "could not create $KR_VENV with $py"
        rm -rf -- "$KR_VENV"
        return 1
    fi
}

# kr_packages_present -> the top-level packages that exist now, on one line.
kr_packages_present() {
    local pkg present=""
    for pkg in "${KR_PACKAGES[@]}"; do
        [[ -f "$KR_ROOT/$pkg/__init__.py" ]] && present+="$pkg "
    done
    printf '%s\n' "${present% }"
}

kr_ensure_install() {
    local reason="" present log
    present="$(kr_packages_present)"
    if [[ ! -e "$KR_STAMP" ]]; then
        reason="new virtualenv"
    elif [[ "$KR_ROOT/pyproject.toml" -nt "$KR_STAMP" ]]; then
        reason="pyproject.toml changed"
    elif [[ "$(cat "$KR_STAMP")" != "packages: $present" ]]; then
        reason="top-level packages changed"
    fi
    [[ -z "$reason" ]] && return 0
    kr_log "installing Python packages: pip install -e '.[$KR_EXTRAS]' ($reason)…"
    log="$(mktemp "${TMPDIR:-/tmp}/kafkaref-pip.XXXXXX")"
    if ! (cd "$KR_ROOT" && PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
        "$KR_VENV/bin/python" -m pip install -q -e ".[$KR_EXTRAS]" >"$log" 2>&1); then
        kr_err "pip install -e '.[$KR_EXTRAS]' failed:"
        tail -n 40 "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
    printf 'packages: %s\n' "$present" >"$KR_STAMP"
    kr_log "Python packages installed."
}

# kr_setup -> everything above, under a lock; 0 when the venv is ready to run.
kr_setup() {
    local rc=0
    if command -v flock >/dev/null 2>&1 && exec {KR_LOCK_FD}<"${BASH_SOURCE[0]}"; then
        if ! flock -n "$KR_LOCK_FD"; then
            kr_log "waiting for another kafkaref set-up to finish…"
            flock "$KR_LOCK_FD"
        fi
    fi
    if ! { kr_ensure_venv && kr_ensure_install; }; then
        rc=1
    fi
    kr_ensure_debs || rc=1
    if [[ -n "${KR_LOCK_FD:-}" ]]; then
        exec {KR_LOCK_FD}<&-
        unset KR_LOCK_FD
    fi
    return "$rc"
}
