#!/usr/bin/env bash
# Build and run the C core's tests (csrc/tests/test_core.c) under
# AddressSanitizer + UndefinedBehaviorSanitizer with leak detection, then
# build the plain library with the release flags to prove it compiles
# warning-free.  If LeakSanitizer does not work here (it cannot run under
# ptrace, e.g. in some sandboxes), leaks are checked with valgrind instead.
# Exits nonzero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CC=${CC:-cc}
OUT=build/c
mkdir -p "$OUT"

TEST_SRC=csrc/tests/test_core.c
if [ ! -f "$TEST_SRC" ]; then
    echo "test-c: FAILED: $TEST_SRC does not exist (the C core has no tests yet)" >&2
    exit 1
fi
shopt -s nullglob
SOURCES=(csrc/*.c)
shopt -u nullglob
if [ ${#SOURCES[@]} -eq 0 ]; then
    echo "test-c: FAILED: no csrc/*.c sources" >&2
    exit 1
fi

COMMON=(-std=c99 -D_GNU_SOURCE -pthread -Wall -Wextra -Werror -Icsrc)
SAN=(-g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
LIBS=(-pthread -lm)

# --- does LeakSanitizer work here? (probe with a program that leaks) -------
cat > "$OUT/lsan_probe.c" <<'PROBE'
#include <stdlib.h>
#include <string.h>
void *volatile sink;
int main(void) { sink = malloc(64); memset(sink, 1, 64); sink = 0; return 0; }
PROBE
"$CC" -std=c99 -g -O0 -fsanitize=address -o "$OUT/lsan_probe" "$OUT/lsan_probe.c"
if ASAN_OPTIONS=detect_leaks=1 "$OUT/lsan_probe" > "$OUT/lsan_probe.log" 2>&1; then
    LSAN=0
elif grep -q "LeakSanitizer: detected memory leaks" "$OUT/lsan_probe.log"; then
    LSAN=1
else
    LSAN=0
fi
if [ -n "${MEMPULSE_NO_LSAN:-}" ]; then
    echo "test-c: MEMPULSE_NO_LSAN is set: not using LeakSanitizer" > "$OUT/lsan_probe.log"
    LSAN=0
fi

# --- sanitized test build -------------------------------------------------------
echo "test-c: building $OUT/test_core (ASan+UBSan)"
"$CC" "${COMMON[@]}" "${SAN[@]}" -o "$OUT/test_core" "${SOURCES[@]}" "$TEST_SRC" "${LIBS[@]}"

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ "$LSAN" = 1 ]; then
    echo "test-c: running $OUT/test_core (leak detection: LeakSanitizer)"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 "$OUT/test_core"
else
    echo "test-c: WARNING: LeakSanitizer does not work in this environment:" >&2
    sed 's/^/    /' "$OUT/lsan_probe.log" | head -5 >&2
    echo "test-c: running the ASan build without leak detection, then leaks with valgrind" >&2
    ASAN_OPTIONS=detect_leaks=0 "$OUT/test_core"
    command -v valgrind > /dev/null || {
        echo "test-c: FAILED: valgrind is not installed (needed for leak checking here)" >&2
        exit 1
    }
    echo "test-c: building $OUT/test_core_vg (no sanitizers) for valgrind"
    "$CC" "${COMMON[@]}" -g -O1 -o "$OUT/test_core_vg" "${SOURCES[@]}" "$TEST_SRC" "${LIBS[@]}"
    valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=1 "$OUT/test_core_vg"
fi

# --- release build: must compile warning-free -----------------------------------
echo "test-c: building $OUT/libmempulse.so (release flags)"
"$CC" "${COMMON[@]}" -O2 -fPIC -shared -o "$OUT/libmempulse.so" "${SOURCES[@]}" \
    -Wl,--no-undefined "${LIBS[@]}"
echo "test-c: OK"
