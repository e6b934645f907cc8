#!/usr/bin/env bash
# Cross-compile the C core (every csrc/*.c) as a shared library for macOS
# (x86_64, arm64), Windows (x86_64, mingw ABI) and Linux against glibc 2.17
# (x86_64, aarch64) with zig cc (PyPI package "ziglang", installed into
# build/venvs/zig), check that the glibc 2.17 builds need no symbol newer
# than GLIBC_2.17, and build the C tests (csrc/tests/test_core.c, scripted
# sampler) for Windows and run them under wine, and for x86_64 glibc 2.17
# and run them here.  Warnings are errors (our own CI only).
#
# Needs: a Python 3 with venv (python3, or PYTHON=...), Debian packages
# "wine" (wine64) and "binutils" (readelf).  Prints a last summary line;
# exits nonzero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=build/port
VENV=build/venvs/zig
ZIG_VERSION=${ZIG_VERSION:-0.17.0}
mkdir -p "$OUT"
START=$(date +%s)

fail() { echo "check-portability: FAILED: $*" >&2; exit 1; }

# --- zig cc from PyPI -----------------------------------------------------------
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import ziglang" 2> /dev/null; then
    PY=${PYTHON:-}
    if [ -z "$PY" ]; then
        for candidate in python3 "$(command -v pyenv > /dev/null && echo "$(pyenv root)/versions/3.11.7/bin/python")"; do
            if [ -n "$candidate" ] && "$candidate" -c "import venv" 2> /dev/null; then PY=$candidate; break; fi
        done
    fi
    [ -n "$PY" ] || fail "no Python 3 with venv to install ziglang (set PYTHON=...)"
    "$PY" -m venv "$VENV" || fail "cannot create $VENV"
    "$VENV/bin/pip" install -q "ziglang==$ZIG_VERSION" > "$OUT/pip.log" 2>&1 || {
        cat "$OUT/pip.log" >&2; fail "pip install ziglang==$ZIG_VERSION"; }
fi
ZIG=("$VENV/bin/python" -m ziglang)
command -v readelf > /dev/null || fail "readelf not found (Debian package binutils)"
command -v wine > /dev/null || fail "wine not found (Debian package wine)"

shopt -s nullglob
SOURCES=(csrc/*.c)
shopt -u nullglob
[ ${#SOURCES[@]} -gt 0 ] || fail "no csrc/*.c sources"
FLAGS=(-std=c99 -O2 -Wall -Wextra -Werror -Icsrc)

# --- shared libraries -----------------------------------------------------------
built=0
for target in x86_64-macos aarch64-macos x86_64-windows-gnu x86_64-linux-gnu.2.17 aarch64-linux-gnu.2.17; do
    case "$target" in
        *macos*) lib="$OUT/$target/libmempulse.dylib"; extra=(-pthread) ;;
        *windows*) lib="$OUT/$target/mempulse.dll"; extra=() ;;
        *linux*) lib="$OUT/$target/libmempulse.so"; extra=(-fPIC -D_GNU_SOURCE -pthread -Wl,--no-undefined -lpthread) ;;
    esac
    mkdir -p "$OUT/$target"
    echo "check-portability: $target -> $lib"
    "${ZIG[@]}" cc -target "$target" "${FLAGS[@]}" -shared -o "$lib" "${SOURCES[@]}" "${extra[@]}" \
        > "$OUT/$target/build.log" 2>&1 || { cat "$OUT/$target/build.log" >&2; fail "building for $target"; }
    built=$((built + 1))
    case "$target" in
        *linux-gnu.2.17)
            # Every versioned glibc symbol the library needs must exist in 2.17.
            newer=$(readelf -W --dyn-syms "$lib" | grep -o 'GLIBC_[0-9.]*' | sort -u |
                    awk -F'[_.]' '$2 > 2 || ($2 == 2 && $3 > 17)' || true)
            [ -z "$newer" ] || fail "$lib needs symbols newer than glibc 2.17: $newer"
            ;;
    esac
done

# --- C tests on Windows (wine) and on glibc 2.17 (here) ----------------------------
echo "check-portability: building $OUT/test_core.exe (x86_64-windows-gnu)"
"${ZIG[@]}" cc -target x86_64-windows-gnu "${FLAGS[@]}" -O1 -o "$OUT/test_core.exe" \
    "${SOURCES[@]}" csrc/tests/test_core.c > "$OUT/test_win.log" 2>&1 || {
    cat "$OUT/test_win.log" >&2; fail "building the C tests for Windows"; }
echo "check-portability: running $OUT/test_core.exe under wine"
WINEDEBUG=-all timeout 600 wine "$OUT/test_core.exe" > "$OUT/test_win.out" 2> "$OUT/test_win.err" || {
    cat "$OUT/test_win.out" "$OUT/test_win.err" >&2; fail "the C tests under wine"; }
win_summary=$(grep -E '^[0-9]+ passed, 0 failed' "$OUT/test_win.out" | tail -1)
[ -n "$win_summary" ] || { cat "$OUT/test_win.out" >&2; fail "no passing summary from the C tests under wine"; }

echo "check-portability: building $OUT/test_core-glibc2.17 (x86_64-linux-gnu.2.17)"
"${ZIG[@]}" cc -target x86_64-linux-gnu.2.17 "${FLAGS[@]}" -O1 -D_GNU_SOURCE -pthread -o "$OUT/test_core-glibc2.17" \
    "${SOURCES[@]}" csrc/tests/test_core.c -lpthread > "$OUT/test_217.log" 2>&1 || {
    cat "$OUT/test_217.log" >&2; fail "building the C tests for glibc 2.17"; }
"$OUT/test_core-glibc2.17" > "$OUT/test_217.out" 2>&1 || {
    cat "$OUT/test_217.out" >&2; fail "the C tests built for glibc 2.17"; }
linux_summary=$(tail -1 "$OUT/test_217.out")

echo "check-portability: OK: $built libraries (macOS x86_64/arm64, Windows x86_64, glibc 2.17 x86_64/aarch64);" \
     "C tests: Windows under wine: $win_summary; glibc 2.17 build here: $linux_summary; $(( $(date +%s) - START )) s"
