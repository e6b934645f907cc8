"""The benchmark's own virtual environment: interpreter, mempulse wheel, peers.

``prepare`` makes (or reuses) build/bench/venv-X.Y for the chosen
interpreter, builds mempulse's wheel from the current tree and force-installs
it (so every run measures the code as it is now), and installs psutil,
numpy, matplotlib and the peers from PyPI.  Each peer is installed and
imported on its own; one that fails is recorded with the reason, so the
table can say why it has no numbers.
"""
from __future__ import print_function

import glob
import json
import os
import re
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "bench")

# distribution -> module imported to check that it works
REQUIRED = [("psutil", "psutil"), ("numpy", "numpy"), ("matplotlib", "matplotlib")]
PEERS = [("memory_profiler", "memory_profiler"), ("memray", "memray"), ("scalene", "scalene")]


class SetupError(Exception):
    pass


def find_python(spec):
    """A path, or X.Y: pyenv's highest X.Y.Z install (3.11 by default)."""
    if os.sep in spec or os.path.isfile(spec):
        if not os.access(spec, os.X_OK):
            raise SetupError("%s is not an executable interpreter" % spec)
        return spec
    if not re.match(r"^\d+\.\d+$", spec):
        raise SetupError("--python wants X.Y (a pyenv version) or a path, got %r" % spec)
    root = _pyenv_root()
    found = []
    for path in glob.glob(os.path.join(root, "versions", spec + ".*")):
        patch = os.path.basename(path)[len(spec) + 1:]
        if patch.isdigit() and os.access(os.path.join(path, "bin", "python"), os.X_OK):
            found.append((int(patch), os.path.join(path, "bin", "python")))
    if not found:
        raise SetupError("no CPython %s under %s/versions (pyenv install %s, or pass a path)"
                         % (spec, root, spec))
    return max(found)[1]


def _pyenv_root():
    try:
        return subprocess.check_output(["pyenv", "root"], stderr=subprocess.DEVNULL).decode().strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))


def version_of(python):
    out = subprocess.check_output(
        [python, "-c", "import sys, platform; print('%d.%d' % sys.version_info[:2]);"
         "print(platform.python_version())"])
    short, full = out.decode().split()
    return short, full


class Environment(object):
    def __init__(self, python, short, full):
        self.python = python  # the venv's interpreter
        self.short = short
        self.full = full
        self.failed = {}  # distribution -> why it cannot be used
        self.versions = {}  # distribution -> installed version


def prepare(base_python, fresh=False, log=print):
    short, full = version_of(base_python)
    if tuple(int(x) for x in short.split(".")) < (3, 8):
        raise SetupError("the harness needs Python 3.8+ (the wheel's build backend, and the peers); got %s" % full)
    venv = os.path.join(BUILD, "venv-" + short)
    logs = os.path.join(BUILD, "logs")
    if not os.path.isdir(logs):
        os.makedirs(logs)
    python = os.path.join(venv, "bin", "python")
    if fresh and os.path.isdir(venv):
        shutil.rmtree(venv)
    if not os.path.exists(python):
        log("creating %s with %s" % (venv, base_python))
        _run([base_python, "-m", "venv", venv], logs, "venv")
        _run([python, "-m", "pip", "install", "--upgrade", "pip"], logs, "pip")
    env = Environment(python, short, full)

    log("building the mempulse wheel from %s" % ROOT)
    dist = os.path.join(BUILD, "dist-" + short)
    shutil.rmtree(dist, ignore_errors=True)
    _run([python, "-m", "pip", "wheel", ROOT, "--no-deps", "-w", dist], logs, "wheel")
    wheel = glob.glob(os.path.join(dist, "mempulse-*.whl"))[0]
    _run([python, "-m", "pip", "install", "cffi"], logs, "cffi")
    _run([python, "-m", "pip", "install", "--force-reinstall", "--no-deps", wheel], logs, "mempulse")
    env.versions["mempulse"] = os.path.basename(wheel).split("-")[1]

    for dist_name, module in REQUIRED + PEERS:
        why = _install(python, dist_name, module, logs)
        if why:
            log("  %s: cannot be used: %s" % (dist_name, why))
            env.failed[dist_name] = why
    env.versions.update(_versions(python, [d for d, _ in REQUIRED + PEERS + [("cffi", None)]]))
    log("environment ready: Python %s, %s" % (full, ", ".join(
        "%s %s" % kv for kv in sorted(env.versions.items()))))
    return env


def _install(python, dist_name, module, logs):
    """Install and import one distribution; the reason it failed, or None."""
    log_path = os.path.join(logs, "install-%s.log" % dist_name)
    with open(log_path, "w") as f:
        code = subprocess.call([python, "-m", "pip", "install", dist_name], stdout=f, stderr=subprocess.STDOUT)
    if code != 0:
        return "pip install %s failed: %s (log: %s)" % (dist_name, _last_error(log_path), log_path)
    check = subprocess.Popen([python, "-c", "import " + module], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = check.communicate()[0].decode("utf-8", "replace")
    if check.returncode != 0:
        return "import %s failed: %s" % (module, (out.strip().splitlines() or ["?"])[-1])
    return None


def _last_error(log_path):
    with open(log_path) as f:
        lines = [line.strip() for line in f if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    return (errors or lines or ["no output"])[-1][:200]


def _versions(python, names):
    script = ("import json, sys\n"
              "from importlib import metadata\n"
              "out = {}\n"
              "for name in sys.argv[1:]:\n"
              "    try: out[name] = metadata.version(name)\n"
              "    except Exception: pass\n"
              "print(json.dumps(out))\n")
    out = subprocess.check_output([python, "-c", script] + list(names))
    return json.loads(out.decode())


def _run(command, logs, name):
    log_path = os.path.join(logs, name + ".log")
    with open(log_path, "w") as f:
        code = subprocess.call(command, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if code != 0:
        raise SetupError("%s failed (exit %d): %s; log: %s"
                         % (" ".join(command), code, _last_error(log_path), log_path))
