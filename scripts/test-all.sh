#!/usr/bin/env bash
# The project's test command: bash scripts/test-all.sh
#
#  1. scripts/test-c.sh: the C core's tests under ASan/UBSan (+ leak check);
#  2. runs the release command, scripts/build-wheels.sh, into build/dist/
#     (sdist, manylinux_2_17 wheels); those wheels are what gets tested;
#  3. for each interpreter: a fresh venv in build/venvs/NAME with pytest,
#     psutil and matplotlib, and mempulse installed from build/dist/ only,
#     so pip picks the release wheel a user of that interpreter would get
#     (cp36-abi3 on CPython 3, py2.py3-none on 2.7 and PyPy); then runs the
#     suite with the venv's pytest executable from the repo root, so the
#     INSTALLED wheel is tested (not the source mempulse/ directory);
#  4. prints one summary line per interpreter; exits nonzero if any failed.
#
# The venvs are made one after the other in the background from the start
# (pip waits on the network; the C tests and the release build run
# meanwhile), and the suites run MEMPULSE_JOBS at a time (default 1; 2 is
# faster on two cores, see JOBS below), each as soon as its venv is ready,
# longest first.
# Each suite's output goes to build/logs/NAME-pytest.log (follow one with
# tail -f); a suite's result line is printed when it ends, and a failed
# one's failures with it.
#
# Interpreters: pyenv's CPython 2.7 3.6 ... 3.13 and /usr/bin/pypy3, and
# "3.11-floor": CPython 3.11 with the lowest cffi and psutil that
# pyproject.toml accepts.  A missing interpreter is a failure.  Developers
# may run a subset with e.g.
#   MEMPULSE_INTERPRETERS="3.11 pypy3" bash scripts/test-all.sh
# Extra pytest arguments: MEMPULSE_PYTEST_ARGS="-x -k sampler".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ALL_INTERPRETERS="2.7 3.6 3.7 3.8 3.9 3.10 3.11 3.12 3.13 pypy3 3.11-floor"
INTERPRETERS=${MEMPULSE_INTERPRETERS:-$ALL_INTERPRETERS}
BUILD_PY_VERSION=3.11
VENVS=build/venvs
LOGS=build/logs
DIST=build/dist
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1
# Our own build: the C core's warnings are errors (users' builds never see this).
export MEMPULSE_WERROR=1
# PyPy sizes its nursery from the CPU's cache; a VM that reports a 480 MB
# L3 gets a nursery of several MB, memory a line touches the first time the
# nursery fills, beyond the exact-attribution tests' bounds. Pinned so the
# figures do not depend on the machine (CPython ignores it).
export PYPY_GC_NURSERY=${PYPY_GC_NURSERY:-4MB}
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV || true

log() { echo "test-all: $*"; }

PYENV_ROOT_DIR=$( (command -v pyenv > /dev/null && pyenv root) 2> /dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")

# The dependency floors, read from pyproject.toml: cffi from the
# "dependencies = [...]" line, psutil from its extra's "psutil = [...]" line.
floor_of() {  # floor_of LINE-START PACKAGE
    grep -E "^$1 = " pyproject.toml | grep -oE "\"$2>=[0-9][0-9.]*" | head -1 | sed "s/.*>=//"
}
CFFI_FLOOR=$(floor_of dependencies cffi)
PSUTIL_FLOOR=$(floor_of psutil psutil)
if [ -z "$CFFI_FLOOR" ] || [ -z "$PSUTIL_FLOOR" ]; then
    log "FAILED: cannot read the cffi / psutil floors from pyproject.toml"
    exit 1
fi

# find_python NAME: print the interpreter's path, or nothing.
find_python() {
    local name=${1%-floor} p
    if [ "$name" = pypy3 ]; then
        for p in /usr/bin/pypy3 "$(command -v pypy3 2> /dev/null || true)"; do
            [ -n "$p" ] && [ -x "$p" ] && { echo "$p"; return; }
        done
        return
    fi
    # highest installed patch release of X.Y (not X.Y-dev, X.Yt, ...)
    for p in $(ls -d "$PYENV_ROOT_DIR"/versions/"$name".* 2> /dev/null | sort -t. -k3,3n -r); do
        case "${p##*/}" in
            "$name".[0-9]|"$name".[0-9][0-9]) ;;
            *) continue ;;
        esac
        [ -x "$p/bin/python" ] && { echo "$p/bin/python"; return; }
    done
}

# pip version cap and test requirements per interpreter.
pip_spec() {
    case $1 in
        2.7) echo "pip<21" ;;
        3.6) echo "pip<22" ;;
        *) echo "pip" ;;
    esac
}
pytest_spec() {
    case $1 in
        2.7) echo "pytest==4.6.11" ;;
        3.6) echo "pytest<7.1" ;;
        *) echo "pytest" ;;
    esac
}
cffi_spec() {
    case $1 in
        *-floor) echo "cffi==$CFFI_FLOOR" ;;
        *) echo "cffi" ;;
    esac
}
psutil_spec() {
    case $1 in
        *-floor) echo "psutil==$PSUTIL_FLOOR" ;;
        2.7) echo "psutil<7" ;;
        # psutil 7.1+ builds on PyPy 7.3.11 but fails to import
        # (undefined symbol PyErr_FormatV); 7.0.0 builds and works.
        pypy3) echo "psutil<7.1" ;;
        *) echo "psutil" ;;
    esac
}

# Optional packages some tests need (pytest-xdist for the pytest plugin,
# IPython for the magic, coverage.py for the sys.monitoring coexistence
# tests, which run on 3.12+ only); versions capped to the last release that installs
# and runs on each interpreter.  When one cannot be installed, the tests
# needing it skip with a reason.
xdist_spec() {
    case $1 in
        2.7) echo "pytest-xdist<2" ;;    # 1.34: the last for pytest 4.6 / Python 2
        3.6) echo "pytest-xdist<3" ;;    # 2.5: the last for Python 3.6
        *) echo "pytest-xdist" ;;
    esac
}
ipython_spec() {
    case $1 in
        2.7) echo "ipython<6" ;;         # 5.x: the last for Python 2
        3.6) echo "ipython<7.17" ;;      # 7.16: the last for Python 3.6
        3.7) echo "ipython<7.35" ;;      # 7.34: the last for Python 3.7
        3.8) echo "ipython<8.13" ;;      # 8.12: the last for Python 3.8
        3.9|pypy3) echo "ipython<8.19" ;;  # 8.18: the last for Python 3.9
        3.10) echo "ipython<8.38" ;;     # IPython 9 needs Python 3.11
        *) echo "ipython" ;;
    esac
}
# Jinja2 for the HTML report (3.x needs Python 3.7+), selenium for its
# browser tests (selenium 4 needs Python 3.8+; where it is absent they skip).
jinja2_spec() {
    case $1 in
        2.7|3.6) echo "jinja2<3" ;;
        *) echo "jinja2" ;;
    esac
}
selenium_spec() {
    case $1 in
        2.7|3.6|3.7) ;;
        *) echo "selenium" ;;
    esac
}
coverage_spec() {
    case $1 in
        3.12|3.13) echo "coverage" ;;
    esac
}
# matplotlib for the plot tests (binary wheels only: a source build of
# numpy or matplotlib would take longer than the whole suite).  Versions are
# the last with wheels for each interpreter.
matplotlib_spec() {
    case $1 in
        2.7) echo "matplotlib<3" ;;
        3.6) echo "matplotlib<3.4" ;;
        3.7) echo "matplotlib<3.6" ;;
        3.8) echo "matplotlib<3.8" ;;
        pypy3) echo "matplotlib<3.8" ;;
        *) echo "matplotlib" ;;
    esac
}

# How many suites run at once (default: one per CPU core, at most 4); 1
# runs them one after the other.
# One by default: a suite's memory figures are its own process's, yet its
# USS moves when another process maps the same files (a concurrent suite of
# the same interpreter, its libpython): the tests of exact attribution then
# fail now and then (seen once in a run with two at a time).
JOBS=${MEMPULSE_JOBS:-1}
case $JOBS in ''|*[!0-9]*|0) JOBS=1 ;; esac

# Longest suites first (minutes on a 2-core machine), so that the last to
# finish is a short one; a name not listed here goes last.
LONGEST_FIRST="pypy3 3.6 2.7 3.13 3.12 3.9 3.10 3.11-floor 3.8 3.7 3.11 3.13-abi"

STATE=build/test-all-state   # what the setup lane and the suites report back
rm -rf "$LOGS" "$STATE"
mkdir -p "$VENVS" "$LOGS" "$DIST" "$STATE"

# Background work (the setup lane, the suites) ends with this script.
BG_PIDS=""
stop_background() {
    local pid
    for pid in $BG_PIDS; do
        kill -TERM -- "-$pid" 2> /dev/null || kill -TERM "$pid" 2> /dev/null || true
    done
}
trap stop_background EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Each background job in a process group of its own, so that stopping it
# stops its pip or pytest too.
set -m

BUILD_PY=$(find_python "$BUILD_PY_VERSION")
if [ -z "$BUILD_PY" ]; then
    log "FAILED: CPython $BUILD_PY_VERSION (needed to build the wheels) not found under $PYENV_ROOT_DIR/versions"
    exit 1
fi
BUILD_VENV=$VENVS/_build

make_venv() {   # make_venv NAME PYTHON DIR
    local name=$1 py=$2 dir=$3
    rm -rf "$dir"
    case $name in
        2.*) "$BUILD_VENV/bin/virtualenv" -q -p "$py" "$dir" ;;
        *) "$py" -m venv "$dir" ;;
    esac
}

# setup_one NAME: a fresh venv for NAME with its test requirements, then
# mempulse from the release files once they are built.  Ends by writing
# $STATE/NAME.setup: "ok" and its notes, or "FAIL  why".
setup_one() {
    local name=$1 py dir setup_log start
    set +e  # (in the setup lane's subshell) every failure is handled here
    py=$(find_python "$name")
    if [ -z "$py" ]; then
        log "$name: FAILED: interpreter not found"
        echo "FAIL  interpreter not found" > "$STATE/$name.setup"
        return
    fi
    echo "$py" > "$STATE/$name.python"
    dir=$VENVS/$name
    setup_log=$LOGS/$name-setup.log
    # The floor run keeps its pins through every later install (IPython 9
    # requires psutil, and would otherwise upgrade it).
    unset PIP_CONSTRAINT
    case $name in
        *-floor)
            printf 'cffi==%s\npsutil==%s\n' "$CFFI_FLOOR" "$PSUTIL_FLOOR" > "$LOGS/$name-constraints.txt"
            export PIP_CONSTRAINT=$ROOT/$LOGS/$name-constraints.txt ;;
    esac
    start=$SECONDS
    log "== $name ($py): venv setup =="
    if ! {
        make_venv "$name" "$py" "$dir" &&
        "$dir/bin/python" -m pip install --upgrade "$(pip_spec "$name")" &&
        "$dir/bin/python" -m pip install "$(cffi_spec "$name")" "$(pytest_spec "$name")"
    } > "$setup_log" 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" "$setup_log" | tail -40
        log "$name: FAILED: venv setup (log: $setup_log)"
        echo "FAIL  venv setup failed (log: $setup_log)" > "$STATE/$name.setup"
        return
    fi
    local notes=""
    if ! { "$dir/bin/python" -m pip install "$(psutil_spec "$name")" &&
           "$dir/bin/python" -c "import psutil; psutil.Process().memory_info()"; } >> "$setup_log" 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" "$setup_log" | tail -20
        log "WARNING: psutil could not be installed or imported for $name; its tests run without psutil"
        "$dir/bin/python" -m pip uninstall -y psutil >> "$setup_log" 2>&1 || true
        notes=" (WITHOUT psutil)"
    fi
    if ! { "$dir/bin/python" -m pip install --only-binary=:all: "$(matplotlib_spec "$name")" &&
           "$dir/bin/python" -c "from matplotlib.figure import Figure"; } >> "$setup_log" 2>&1; then
        log "WARNING: matplotlib has no usable wheels for $name; its plot tests skip"
        "$dir/bin/python" -m pip uninstall -y matplotlib >> "$setup_log" 2>&1 || true
        notes="$notes (without matplotlib)"
    fi
    local optional spec
    for optional in xdist ipython coverage jinja2 selenium; do
        spec=$("${optional}_spec" "$name")
        [ -n "$spec" ] || continue
        if ! "$dir/bin/python" -m pip install "$spec" >> "$setup_log" 2>&1; then
            log "WARNING: $spec could not be installed for $name; the tests needing it skip"
        fi
    done
    # Only the release files: pip picks the wheel this interpreter gets
    # (its requirement, cffi, is in already).
    while [ ! -e "$STATE/release" ]; do sleep 1; done
    if [ "$(cat "$STATE/release")" != ok ] ||
       ! "$dir/bin/python" -m pip install --no-index --find-links "$DIST" mempulse >> "$setup_log" 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" "$setup_log" | tail -20
        log "$name: FAILED: installing mempulse from $DIST (log: $setup_log)"
        echo "FAIL  venv setup failed (log: $setup_log)" > "$STATE/$name.setup"
        return
    fi
    local wheel
    wheel=$(grep -oE "mempulse-[^ /]*\.whl" "$setup_log" | tail -1)
    log "$name: installed $wheel"
    log "$name: venv ready in $((SECONDS - start))s: $("$dir/bin/python" -m pip list --format=freeze 2> /dev/null \
        | grep -iE '^(pip|pytest|psutil|cffi|pytest-xdist|ipython|coverage|matplotlib|jinja2|selenium)==' | tr '\n' ' ')"
    echo "ok$notes" > "$STATE/$name.setup"
}

# The setup lane: every venv, one after the other (pip is mostly waiting on
# the network), longest suite first, while the C tests, the release build
# and the earlier suites run.
in_longest_first_order() {   # the names given, reordered
    local name out=""
    for name in $LONGEST_FIRST; do
        case " $* " in *" $name "*) out="$out $name" ;; esac
    done
    for name in "$@"; do
        case " $LONGEST_FIRST " in *" $name "*) ;; *) out="$out $name" ;; esac
    done
    echo $out
}
SETUP_ORDER=$(in_longest_first_order $INTERPRETERS)
setup_lane() {
    local name
    # virtualenv<20.22 is the last that can create Python 2.7 environments.
    rm -rf "$BUILD_VENV"
    { "$BUILD_PY" -m venv "$BUILD_VENV" &&
      "$BUILD_VENV/bin/pip" install -q --upgrade pip "virtualenv<20.22"; } > "$LOGS/_build.log" 2>&1 || {
        cat "$LOGS/_build.log"; log "FAILED: setting up the venv tool (virtualenv, for 2.7)"; }
    for name in $SETUP_ORDER; do
        setup_one "$name"
    done
}

if [ -f tests/__init__.py ]; then
    # pytest would then put the repo root on sys.path and import the source
    # mempulse/ instead of the installed wheel.
    log "FAILED: tests/__init__.py must not exist (it would make pytest test the source tree, not the wheel)"
    exit 1
fi

for f in mempulse/_ffi.py mempulse/libmempulse.so mempulse/_api.abi3.so; do
    if [ -e "$f" ]; then
        log "WARNING: $f exists in the source tree (from an editable install or a manual"
        log "  build_ffi.py run): a subprocess started with the repo root as its working"
        log "  directory would import the source mempulse/, not the installed wheel"
    fi
done

setup_lane > "$STATE/setup-lane.out" 2>&1 &
BG_PIDS="$BG_PIDS $!"
SETUP_LANE=$!
# The setup lane's lines are shown as they come, between the other steps'.
show_setup_lane() {
    local shown=${SHOWN_SETUP:-0} total
    total=$(wc -l < "$STATE/setup-lane.out")
    if [ "$total" -gt "$shown" ]; then
        sed -n "$((shown + 1)),${total}p" "$STATE/setup-lane.out"
        SHOWN_SETUP=$total
    fi
}

# ---- 1. C tests ------------------------------------------------------------------
log "== C core tests =="
bash scripts/test-c.sh 2>&1 | tee "$LOGS/c.log"

# ---- 2. the release build -----------------------------------------------------------
log "== the release build: scripts/build-wheels.sh --out $DIST (CPython $BUILD_PY_VERSION) =="
if ! MEMPULSE_BUILD_PYTHON=$BUILD_PY bash scripts/build-wheels.sh --out "$DIST" > "$LOGS/release.log" 2>&1; then
    echo failed > "$STATE/release"
    tail -40 "$LOGS/release.log"
    log "FAILED: the release build (log: $LOGS/release.log)"
    exit 1
fi
echo ok > "$STATE/release"
grep -E "^build-wheels: (ok|sdist)" "$LOGS/release.log" | sed 's/^/test-all: /'
WHEELS=$(cd "$DIST" && ls mempulse-*.whl | tr '\n' ' ')
show_setup_lane

# ---- 3. the suites, $JOBS at a time --------------------------------------------------
# Each suite runs with its venv's pytest executable from the repo root, its
# output in build/logs/NAME-pytest.log; what failed is shown when it ends.
declare -A RESULT
FAILED=0

# The other binding: the tracer tests again through cffi's ABI mode.
# CPython 3 uses the API-mode module by default; ABI mode (what 2.7, PyPy and
# free-threaded builds get) is forced on the newest interpreter, whose
# tracer tests also run under both drivers.  It shares 3.13's venv.
ABI_TESTS="tests/test_engine.py tests/test_tracer.py tests/test_threads.py
    tests/test_attribution.py tests/test_small_allocations.py tests/test_binding.py"
ABI_RUNS=""
case " $INTERPRETERS " in *" 3.13 "*) ABI_RUNS="3.13-abi" ;; esac

venv_of() { echo "${1%-abi}"; }
without() {   # without WORD LIST...: LIST less WORD
    local word=$1 out="" w
    shift
    for w in "$@"; do [ "$w" = "$word" ] || out="$out $w"; done
    echo $out
}

# run_suite RUN: in the background; writes $STATE/RUN.result.
run_suite() {
    local run=$1 name dir test_log rc summary notes
    set +e  # (in its own subshell) pytest's status is the result
    name=$(venv_of "$run")
    dir=$VENVS/$name
    test_log=$LOGS/$run-pytest.log
    notes=$(sed 's/^ok//' "$STATE/$name.setup")
    case $run in
        *-abi)
            # shellcheck disable=SC2086
            MEMPULSE_CFFI=abi "$dir/bin/pytest" $ABI_TESTS -q -p no:cacheprovider ${MEMPULSE_PYTEST_ARGS:-} \
                < /dev/null > "$test_log" 2>&1 ;;
        *)
            # shellcheck disable=SC2086
            "$dir/bin/pytest" tests -q -p no:cacheprovider ${MEMPULSE_PYTEST_ARGS:-} \
                < /dev/null > "$test_log" 2>&1 ;;
    esac
    rc=$?
    summary=$(grep -E "(passed|failed|error|skipped|no tests ran)" "$test_log" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')
    case $rc in
        0) echo "ok    ${summary}${notes}" ;;
        5) echo "FAIL  no tests were collected${notes}" ;;
        *) echo "FAIL  pytest exit $rc: ${summary}${notes}" ;;
    esac > "$STATE/$run.result.tmp"
    mv "$STATE/$run.result.tmp" "$STATE/$run.result"
}

# What a failed suite shows: its failures and errors, else its last lines.
show_failure() {   # show_failure LOG
    local first
    first=$({ grep -nE "^=+ (FAILURES|ERRORS) =+$" "$1" || true; } | head -1 | cut -d: -f1)
    if [ -n "$first" ] && [ "$(wc -l < "$1")" -le $((first + 400)) ]; then
        tail -n +"$first" "$1"
    elif [ -n "$first" ]; then
        sed -n "${first},$((first + 300))p" "$1"
        echo "[... cut: the whole output is in $1 ...]"
        tail -40 "$1"
    else
        tail -60 "$1"
    fi
}

declare -A STARTED_AT RUN_PID
PENDING=$(in_longest_first_order $INTERPRETERS $ABI_RUNS)
RUNNING=""
log "== the suites: $JOBS at a time, longest first: $PENDING =="
while [ -n "$PENDING$RUNNING" ]; do
    show_setup_lane
    # Finished suites.
    for run in $RUNNING; do
        [ -e "$STATE/$run.result" ] || continue
        wait "${RUN_PID[$run]}" 2> /dev/null || true
        RUNNING=$(without "$run" $RUNNING)
        BG_PIDS=$(without "${RUN_PID[$run]}" $BG_PIDS)
        RESULT[$run]=$(cat "$STATE/$run.result")
        log "$run: ${RESULT[$run]} ($((SECONDS - ${STARTED_AT[$run]}))s; log: $LOGS/$run-pytest.log)"
        case ${RESULT[$run]} in
            ok*) ;;
            *) FAILED=1; show_failure "$LOGS/$run-pytest.log"; log "$run: FAILED (above: the end of $LOGS/$run-pytest.log)" ;;
        esac
    done
    # Suites to start: in order, each once its venv is ready.
    for run in $PENDING; do
        set -- $RUNNING
        [ $# -lt "$JOBS" ] || break
        name=$(venv_of "$run")
        [ -e "$STATE/$name.setup" ] || continue
        PENDING=$(without "$run" $PENDING)
        case $(cat "$STATE/$name.setup") in
            ok*) ;;
            *)
                if [ "$run" = "$name" ]; then RESULT[$run]=$(cat "$STATE/$name.setup")
                else RESULT[$run]="FAIL  no venv for $name"; fi
                FAILED=1
                continue ;;
        esac
        case $run in
            *-abi) log "== $run: $name with MEMPULSE_CFFI=abi (tracer tests) started ==" ;;
            *) log "== $run ($(cat "$STATE/$name.python")): the suite started ==" ;;
        esac
        STARTED_AT[$run]=$SECONDS
        run_suite "$run" &
        RUN_PID[$run]=$!
        BG_PIDS="$BG_PIDS $!"
        RUNNING="$RUNNING $run"
    done
    if [ -n "$PENDING$RUNNING" ]; then
        if [ -z "$RUNNING" ] && ! kill -0 "$SETUP_LANE" 2> /dev/null; then
            # Nothing running and no venv coming (should not happen).
            show_setup_lane
            for run in $PENDING; do RESULT[$run]="FAIL  its venv was never set up"; done
            FAILED=1
            break
        fi
        sleep 2
    fi
done
wait "$SETUP_LANE" 2> /dev/null || true
BG_PIDS=""  # all ended (and their ids may be anyone's now)
show_setup_lane

# ---- 4. summary ---------------------------------------------------------------------------
echo
log "== summary (wheels: $WHEELS) =="
for name in $INTERPRETERS $ABI_RUNS; do
    printf 'test-all: %-10s %s\n' "$name" "${RESULT[$name]:-FAIL  did not run}"
done
if [ -z "${MEMPULSE_INTERPRETERS:-}" ]; then :; else
    log "note: MEMPULSE_INTERPRETERS is set: ran only: $INTERPRETERS"
fi
# One closing line over every run: the C tests plus each interpreter's pytest.
count() {  # count WORD: sum "N WORD" over the ends of the C log and the pytest logs
    { tail -n 3 "$LOGS/c.log" "$LOGS"/*-pytest.log 2> /dev/null || true; } |
        { grep -oE "[0-9]+ $1" || true; } | awk '{ n += $1 } END { print n + 0 }'
}
failed=$(( $(count failed) + $(count error) ))
if [ "$FAILED" != 0 ] && [ "$failed" = 0 ]; then
    failed=1  # a run that failed before its tests could report (setup, no interpreter)
fi
if [ "$FAILED" != 0 ]; then
    log "FAILED"
else
    log "all passed"
fi
# Last line, in the plain form CI reads.
echo "test-all: $(count passed) passed, $failed failed, $(count skipped) skipped"
[ "$FAILED" = 0 ]
