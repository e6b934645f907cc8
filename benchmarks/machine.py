"""What the numbers were measured on: CPU, cores, kernel, memory, date."""
import datetime
import os
import platform
import subprocess


def describe(root):
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": "%s %s" % (platform.system(), platform.release()),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / float(1 << 30), 1),
        "thp": _read("/sys/kernel/mm/transparent_hugepage/enabled"),
        "load_average": " ".join("%.2f" % x for x in os.getloadavg()),
        "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(root),
    }


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _commit(root):
    try:
        head = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                                       stderr=subprocess.DEVNULL).decode().strip()
        dirty = subprocess.check_output(["git", "status", "--porcelain", "--", "mempulse", "csrc"],
                                        cwd=root, stderr=subprocess.DEVNULL).decode().strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + (" + uncommitted changes" if dirty else "")
