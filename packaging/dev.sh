#!/usr/bin/env bash
# The README's two commands:
#
#   bash packaging/dev.sh run  [strata args…]   set up this machine, then run strata (no args: the GUI)
#   bash packaging/dev.sh test [pytest args…]   set up, start what the tests need, run the suite twice:
#                                               (a) everything as the caller (root in CI),
#                                               (b) the rootless subset as the unprivileged user strata-test
#
# Set-up targets a fresh Debian or Ubuntu machine. Every step looks before it acts, so on a
# warm machine the whole set-up costs a few seconds. The pass as strata-test exists because
# Strata's promise is "no root": a test that only passes as root proves nothing about that.
#
# Pytest arguments: paths (existing files/dirs, optionally with ::node) replace the default
# `tests`; the unprivileged pass keeps only those inside UNPRIV_TEST_DIRS. Every other
# argument goes to both passes, except that pass (b) always ends with -m "not docker".
# Give options that take a path as --option=value.
set -euo pipefail
umask 022

# Test directories (and files) that must also pass as an unprivileged user. Missing ones are skipped.
UNPRIV_TEST_DIRS=(tests/runtime tests/store tests/api tests/builder tests/cli tests/distro)

APT_PACKAGES=(
    python3-venv docker.io busybox-static docker-registry skopeo umoci buildah podman uidmap debootstrap libseccomp2
    xvfb libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
    libxcb-render-util0 libxcb-xinerama0 libegl1 libgl1 libfontconfig1 libdbus-1-3 zstd xauth
)
TEST_USER=strata-test
# A user with no subordinate range: rootless with a single-id mapping (tests/distro).
SINGLE_USER=strata-single
SUBID_RANGE=100000:65536
DOCKERD_LOG=/tmp/strata-dockerd.log
DOCKERD_WAIT_SECONDS=60

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
RUN_TMP=""
XVFB_PID=""
UNPRIV_COPY=""
UNPRIV_TREE=""

say() { printf 'dev.sh: %s\n' "$*"; }
die() { say "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# True when this script may act as root: it is root, or sudo works without a password.
can_priv() { is_root || sudo -n true 2>/dev/null; }

priv() {
    if is_root; then "$@"; else sudo -n "$@"; fi
}

cleanup() {
    if [ -n "$XVFB_PID" ]; then kill "$XVFB_PID" 2>/dev/null || true; fi
    if [ -n "$UNPRIV_COPY" ]; then priv rm -rf -- "$UNPRIV_COPY" || true; fi
    if [ -n "$RUN_TMP" ]; then priv rm -rf -- "$RUN_TMP" || true; fi
}
trap cleanup EXIT

# --- Debian packages ---------------------------------------------------------------------

missing_packages() {
    local installed pkg
    installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${APT_PACKAGES[@]}" 2>/dev/null \
        | awk '$2 == "installed" { print $1 }' || true)
    for pkg in "${APT_PACKAGES[@]}"; do
        grep -qxF -- "$pkg" <<<"$installed" || printf '%s\n' "$pkg"
    done
}

ensure_packages() {
    if ! command -v dpkg-query >/dev/null; then
        say "not a Debian/Ubuntu machine: install these yourself: ${APT_PACKAGES[*]}"
        return 0
    fi
    local missing
    mapfile -t missing < <(missing_packages)
    [ "${#missing[@]}" -eq 0 ] && return 0
    if ! can_priv; then
        say "missing packages (installing them needs root or sudo): ${missing[*]}"
        return 0
    fi
    say "installing ${missing[*]}"
    priv env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    priv env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 "${missing[@]}"
}

# --- Python venv -------------------------------------------------------------------------

venv_dir() {
    if [ -n "${STRATA_VENV:-}" ]; then
        printf '%s\n' "$STRATA_VENV"
    elif is_root; then
        printf '%s\n' /opt/strata-venv
    else
        printf '%s\n' "$HOME/.cache/strata-venv"
    fi
}

# Debian's python lives in /usr/bin where every user can run it; a pyenv python under
# /root cannot be run by strata-test.
base_python() {
    if [ -x /usr/bin/python3 ]; then printf '%s\n' /usr/bin/python3; else command -v python3; fi
}

ensure_venv() {
    VENV=$(venv_dir)
    local py stamp want
    py=$(base_python) || die "no python3 found; install python3 and python3-venv"
    if ! "$VENV/bin/python" -c '' 2>/dev/null; then
        if [ -e "$VENV" ] && [ ! -e "$VENV/pyvenv.cfg" ] && [ -n "$(ls -A -- "$VENV")" ]; then
            die "$VENV exists and is not a venv; remove it or set STRATA_VENV elsewhere"
        fi
        say "creating venv $VENV with $py"
        "$py" -m venv --clear "$VENV"
    fi
    # The editable install points at this checkout, so a moved checkout needs a new install.
    stamp="$VENV/.strata-install-stamp"
    want=$({ sha256sum <"$REPO/pyproject.toml"; printf '%s\n' "$REPO"; "$VENV/bin/python" -VV; } | sha256sum)
    if [ "$(cat -- "$stamp" 2>/dev/null || true)" != "$want" ]; then
        say "installing strata and its test tools into $VENV (the first time takes a minute or two)"
        # compat mode: a plain path entry instead of an import hook, which every `strata`
        # start would otherwise pay for.
        "$VENV/bin/python" -m pip install -q -e "${REPO}[test]" --config-settings editable_mode=compat
        chmod -R a+rX "$VENV"
        printf '%s\n' "$want" >"$stamp"
    fi
    # Bytecode up front: with PYTHONDONTWRITEBYTECODE set, every `strata` call would
    # otherwise compile the package again, which costs more than a container start.
    "$VENV/bin/python" -m compileall -q "$REPO/explorer" >/dev/null || true
    export PATH="$VENV/bin:$PATH"
}

# --- services the tests need -------------------------------------------------------------

docker_up() { timeout 10 docker info >/dev/null 2>&1; }

ensure_dockerd() {
    if ! command -v docker >/dev/null; then
        say "docker is not installed: docker tests skip (fail under CI)"
        return 0
    fi
    docker_up && return 0
    if ! can_priv; then
        say "dockerd is not running and starting it needs root: docker tests skip (fail under CI)"
        return 0
    fi
    say "starting dockerd (log $DOCKERD_LOG)"
    # setsid: the daemon outlives this script, so the next run finds it up.
    priv setsid dockerd --data-root /var/lib/docker --storage-driver overlay2 \
        >"$DOCKERD_LOG" 2>&1 </dev/null &
    local pid=$! deadline=$((SECONDS + DOCKERD_WAIT_SECONDS))
    while [ "$SECONDS" -lt "$deadline" ]; do
        docker_up && return 0
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.5
    done
    say "dockerd did not come up; last lines of $DOCKERD_LOG:"
    tail -n 20 "$DOCKERD_LOG" || true
}

ensure_display() {
    [ -n "${DISPLAY:-}" ] && return 0
    if ! command -v Xvfb >/dev/null; then
        say "no DISPLAY and no Xvfb: only the offscreen Qt platform is available"
        return 0
    fi
    local numfile="$RUN_TMP/xvfb-display"
    # -displayfd lets Xvfb pick a free display itself and tell us which.
    Xvfb -displayfd 3 -screen 0 1280x1024x24 -nolisten tcp 3>"$numfile" >"$RUN_TMP/xvfb.log" 2>&1 &
    XVFB_PID=$!
    for _ in $(seq 100); do
        if [ -s "$numfile" ]; then
            DISPLAY=":$(head -n 1 "$numfile" | tr -d '[:space:]')"
            export DISPLAY
            return 0
        fi
        if ! kill -0 "$XVFB_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    say "Xvfb did not start:"
    cat "$RUN_TMP/xvfb.log" || true
}

ensure_test_user() {
    local f
    if ! id -u "$TEST_USER" >/dev/null 2>&1; then
        say "creating user $TEST_USER"
        priv useradd -m -s /bin/bash "$TEST_USER"
    fi
    for f in /etc/subuid /etc/subgid; do
        if ! priv grep -q "^$TEST_USER:" "$f" 2>/dev/null; then
            printf '%s:%s\n' "$TEST_USER" "$SUBID_RANGE" | priv tee -a "$f" >/dev/null
        fi
    done
}

# The single-id user must have no subordinate range, whatever useradd's defaults add.
ensure_single_user() {
    local f
    if ! id -u "$SINGLE_USER" >/dev/null 2>&1; then
        say "creating user $SINGLE_USER (no subordinate ids)"
        priv useradd -m -s /bin/bash "$SINGLE_USER"
    fi
    for f in /etc/subuid /etc/subgid; do
        if priv grep -q "^$SINGLE_USER:" "$f" 2>/dev/null; then
            priv sed -i "/^$SINGLE_USER:/d" "$f"
        fi
    done
}

# The Debian base image of tests/distro: debootstrap from this machine's apt mirror, cached
# outside the checkout (tests/fixtures/debian.py says where). Needs root; about half a
# minute the first time, nothing after.
ensure_debian_image() {
    local out
    if ! out=$(cd "$REPO" && priv "$VENV/bin/python" -m tests.fixtures.debian 2>&1); then
        say "could not make the Debian base image (tests/distro fail under CI): $out"
    fi
}

# Some kernels switch unprivileged user namespaces off (Debian's old knob, Ubuntu's AppArmor
# knob); the rootless runtime and its tests need them on.
ensure_userns() {
    local knob=/proc/sys/kernel/unprivileged_userns_clone
    if [ -r "$knob" ] && [ "$(cat "$knob")" = 0 ]; then
        say "enabling unprivileged user namespaces (kernel.unprivileged_userns_clone=1)"
        priv sysctl -qw kernel.unprivileged_userns_clone=1 || say "could not: userns tests fail"
    fi
    knob=/proc/sys/kernel/apparmor_restrict_unprivileged_userns
    if [ -r "$knob" ] && [ "$(cat "$knob")" = 1 ]; then
        say "allowing unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=0)"
        priv sysctl -qw kernel.apparmor_restrict_unprivileged_userns=0 || say "could not: userns tests fail"
    fi
}

# --- arguments ---------------------------------------------------------------------------

# Splits pytest arguments into paths (made relative to the repo when inside it) and the rest.
split_pytest_args() {
    USER_PATHS=()
    USER_OPTS=()
    local arg file abs
    for arg in "$@"; do
        file=${arg%%::*}
        if [ "${arg#-}" = "$arg" ] && [ -e "$file" ]; then
            abs=$(cd -- "$(dirname -- "$file")" && pwd -P)/$(basename -- "$file")
            abs=${abs%/.}
            case "$abs" in
                "$REPO") arg=.${arg#"$file"} ;;
                "$REPO"/*) arg=${abs#"$REPO"/}${arg#"$file"} ;;
                *) arg=$abs${arg#"$file"} ;;
            esac
            USER_PATHS+=("$arg")
        else
            USER_OPTS+=("$arg")
        fi
    done
}

# The unprivileged pass's paths: the existing UNPRIV_TEST_DIRS, narrowed to the paths asked for.
unpriv_paths() {
    local dir p
    for dir in "${UNPRIV_TEST_DIRS[@]}"; do
        if [ ! -e "$REPO/$dir" ]; then
            # A renamed or removed directory must not drop out of the unprivileged pass unseen.
            printf 'dev.sh: %s is listed for the unprivileged pass but does not exist\n' "$dir" >&2
            [ "${CI:-}" = true ] && printf '%s\n' "$dir"  # pytest then fails on the missing path
            continue
        fi
        if [ "${#USER_PATHS[@]}" -eq 0 ]; then
            printf '%s\n' "$dir"
            continue
        fi
        for p in "${USER_PATHS[@]}"; do
            p=${p%/}
            case "$p" in
                "$dir" | "$dir"/* | "$dir"::*) printf '%s\n' "$p" ;;
                . | tests) printf '%s\n' "$dir" ;;
            esac
        done
    done
}

# --- test passes -------------------------------------------------------------------------

# Prints "passed failed skipped" from a junit xml file; fails when there is none.
junit_counts() {
    "$VENV/bin/python" - "$1" <<'PY'
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    sys.exit(1)
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
total = sum(int(s.get("tests", 0)) for s in suites)
failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(total - failed - skipped, failed, skipped)
PY
}

ROOT_RC=0
UNPRIV_RC=0
UNPRIV_NOTE=""

run_root_pass() {
    local paths=("${USER_PATHS[@]}")
    [ "${#paths[@]}" -eq 0 ] && paths=(tests)
    say "pass (a) as $(id -un): pytest ${paths[*]} ${USER_OPTS[*]}"
    (cd "$REPO" && "$VENV/bin/python" -m pytest "${paths[@]}" "${USER_OPTS[@]}" \
        --junitxml="$RUN_TMP/root.xml") || ROOT_RC=$?
}

# A checkout under /root (mode 0700) is unreadable to strata-test; copy it rather than
# loosen /root. shared/ travels along when it sits beside the checkout, as in CI.
# Sets UNPRIV_TREE.
choose_unpriv_tree() {
    if priv runuser -u "$TEST_USER" -- test -r "$REPO/pyproject.toml"; then
        UNPRIV_TREE=$REPO
        return 0
    fi
    UNPRIV_COPY=$(mktemp -d /tmp/strata-unpriv.XXXXXX)
    UNPRIV_TREE="$UNPRIV_COPY/$(basename -- "$REPO")"
    mkdir -- "$UNPRIV_TREE"
    tar -C "$REPO" --exclude=./.git --exclude='*.egg-info' --exclude=__pycache__ \
        --exclude=.mypy_cache --exclude=.pytest_cache --exclude=.ruff_cache -cf - . \
        | tar -C "$UNPRIV_TREE" -xf -
    if [ -d "$REPO/../shared" ]; then cp -R -- "$REPO/../shared" "$UNPRIV_COPY/shared"; fi
    "$VENV/bin/python" -m compileall -q "$UNPRIV_TREE/explorer" >/dev/null || true
    chmod 0755 "$UNPRIV_COPY"
    priv chown -R "$TEST_USER:" "$UNPRIV_COPY"
}

run_unprivileged_pass() {
    local paths mark="not docker" out home
    mapfile -t paths < <(unpriv_paths)
    if [ "${#paths[@]}" -eq 0 ]; then
        UNPRIV_NOTE="skipped: no tests under ${UNPRIV_TEST_DIRS[*]} among the paths asked for"
        return 0
    fi
    if ! can_priv; then
        UNPRIV_NOTE="skipped: switching to $TEST_USER needs root or sudo (pass (a) already ran unprivileged)"
        return 0
    fi
    if ! priv runuser -u "$TEST_USER" -- "$VENV/bin/python" -c '' 2>/dev/null; then
        UNPRIV_NOTE="failed: $TEST_USER cannot run $VENV/bin/python; set STRATA_VENV to a shared place"
        UNPRIV_RC=1
        return 0
    fi
    choose_unpriv_tree
    out="$RUN_TMP/unpriv"
    mkdir -p "$out"
    priv chown "$TEST_USER:" "$out"
    home=$(getent passwd "$TEST_USER" | cut -d: -f6)
    say "pass (b) as $TEST_USER in $UNPRIV_TREE: pytest ${paths[*]} -m '$mark' ${USER_OPTS[*]}"
    priv runuser -u "$TEST_USER" -- env -i -C "$UNPRIV_TREE" \
        HOME="$home" USER="$TEST_USER" LOGNAME="$TEST_USER" LANG=C.UTF-8 \
        PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" \
        CI="${CI:-}" STRATA_TEST_UNPRIV=1 DISPLAY="${DISPLAY:-}" DOCKER_BUILDKIT=0 \
        ${QT_QPA_PLATFORM:+QT_QPA_PLATFORM="$QT_QPA_PLATFORM"} \
        PYTHONPATH="$UNPRIV_TREE" PYTHONDONTWRITEBYTECODE=1 \
        "$VENV/bin/python" -m pytest "${paths[@]}" "${USER_OPTS[@]}" -m "$mark" \
        -p no:cacheprovider --junitxml="$out/unpriv.xml" || UNPRIV_RC=$?
    # Exit 5 (no test collected): a local run of a subset may select none; under CI every
    # pass that was asked to run must run tests.
    [ "$UNPRIV_RC" -eq 5 ] && [ "${CI:-}" != true ] && UNPRIV_RC=0
    return 0
}

summarize() {
    local counts total_p=0 total_f=0 total_s=0 p f s
    say "set-up took ${SETUP_SECONDS}s; pass (a) exited $ROOT_RC; pass (b) ${UNPRIV_NOTE:-exited $UNPRIV_RC}"
    [ "$ROOT_RC" -eq 5 ] && say "pass (a) collected no tests: that is a failure"
    if counts=$(junit_counts "$RUN_TMP/root.xml"); then
        read -r p f s <<<"$counts"
        printf 'root: %s passed, %s failed, %s skipped\n' "$p" "$f" "$s"
        total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + s))
    else
        printf 'root: no results (pytest exited %s)\n' "$ROOT_RC"
    fi
    if [ -n "$UNPRIV_NOTE" ]; then
        printf 'unprivileged: %s\n' "$UNPRIV_NOTE"
    elif counts=$(junit_counts "$RUN_TMP/unpriv/unpriv.xml"); then
        read -r p f s <<<"$counts"
        printf 'unprivileged: %s passed, %s failed, %s skipped\n' "$p" "$f" "$s"
        total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + s))
    else
        printf 'unprivileged: no results (pytest exited %s)\n' "$UNPRIV_RC"
    fi
    printf 'total: %s passed, %s failed, %s skipped\n' "$total_p" "$total_f" "$total_s"
}

# --- verbs -------------------------------------------------------------------------------

# The desktop entry, icon and Dockerfile MIME type for the user who runs Strata, so file
# managers offer "Open with Strata" and drops of Dockerfiles find it. Best effort: a
# machine without a desktop (or without xdg-utils) simply goes without.
ensure_desktop_entry() {
    local data="${XDG_DATA_HOME:-$HOME/.local/share}" apps icons mime
    apps="$data/applications" icons="$data/icons/hicolor" mime="$data/mime"
    mkdir -p "$apps" "$icons/scalable/apps" "$icons/256x256/apps" "$mime/packages" 2>/dev/null || return 0
    sed "s|^Exec=strata |Exec=$VENV/bin/strata |; s|^TryExec=strata$|TryExec=$VENV/bin/strata|" \
        "$REPO/packaging/strata.desktop" > "$apps/strata.desktop" 2>/dev/null || return 0
    cp -f "$REPO/resources/strata.svg" "$icons/scalable/apps/strata.svg" 2>/dev/null || true
    cp -f "$REPO/resources/strata.png" "$icons/256x256/apps/strata.png" 2>/dev/null || true
    cp -f "$REPO/resources/strata-mime.xml" "$mime/packages/strata-dockerfile.xml" 2>/dev/null || true
    if command -v update-mime-database >/dev/null 2>&1; then update-mime-database "$mime" >/dev/null 2>&1 || true; fi
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database "$apps" >/dev/null 2>&1 || true
    fi
}

cmd_run() {
    ensure_packages
    ensure_venv
    ensure_desktop_entry
    exec "$VENV/bin/strata" "$@"
}

cmd_test() {
    RUN_TMP=$(mktemp -d /tmp/strata-dev.XXXXXX)
    chmod 0755 "$RUN_TMP"
    export DOCKER_BUILDKIT=0
    ensure_packages
    ensure_venv
    ensure_dockerd
    ensure_display
    if can_priv; then
        ensure_test_user
        ensure_single_user
        ensure_userns
        ensure_debian_image
    fi
    SETUP_SECONDS=$SECONDS
    split_pytest_args "$@"
    run_root_pass
    run_unprivileged_pass
    summarize
    [ "$ROOT_RC" -eq 0 ] && [ "$UNPRIV_RC" -eq 0 ]
}

case "${1:-}" in
    run) shift; cmd_run "$@" ;;
    test) shift; cmd_test "$@" ;;
    *) die "usage: bash packaging/dev.sh run [strata args…] | test [pytest args…]" ;;
esac
