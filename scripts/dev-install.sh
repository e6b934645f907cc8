#!/usr/bin/env bash
# Developer loop: build a wheel from this tree and (re)install it into
# build/dev/vXY venvs (created on first use with pytest, psutil,
# matplotlib, pytest-xdist, coverage, ipython), so tests run against an
# installed mempulse as in CI.  Usage:
#   bash scripts/dev-install.sh 3.11 3.13      # then: build/dev/v313/bin/pytest tests/...
# Never run it while a pytest of the same venv is running.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PIP_DISABLE_PIP_VERSION_CHECK=1 MEMPULSE_WERROR=1
PYENV_ROOT_DIR=$(pyenv root 2> /dev/null || echo "$HOME/.pyenv")
versions=${*:-3.11 3.13}
first=""
for v in $versions; do
    py=$(ls -d "$PYENV_ROOT_DIR"/versions/"$v".[0-9]* | sort -t. -k3,3n | tail -1)/bin/python
    dir=build/dev/v${v/./}
    if [ ! -x "$dir/bin/pytest" ]; then
        "$py" -m venv "$dir"
        "$dir/bin/pip" install -q --upgrade pip
        "$dir/bin/pip" install -q cffi pytest psutil matplotlib pytest-xdist coverage ipython jinja2 selenium
    fi
    [ -z "$first" ] && first=$dir
done
rm -rf build/dev/dist
"$first/bin/pip" wheel -q . --no-deps -w build/dev/dist
for v in $versions; do
    dir=build/dev/v${v/./}
    "$dir/bin/pip" install -q --force-reinstall --no-deps build/dev/dist/mempulse-*.whl
done
echo "dev-install: $(ls build/dev/dist) into $versions"
