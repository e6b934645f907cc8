"""The benchmark groups and what each one is made of.

A group is a set of workloads measured under a set of tools, each run a
fresh process (measure.py), rounds interleaved by run.py.  ``loop`` and
``numpy`` are the original workloads (workloads.py, tools.py, summary.py,
report.py); the others each live in one module that defines its workloads,
its tools, the measurement done inside the child process and its table:

* ``fixed``: fixed cost of one traced block (fixed_cost.py, issue 8 item 2)
* ``calls``: call-heavy code at depth 2 and 3, both drivers (call_depth.py, issue 8 item 3)
* ``cache``: per-line attribution on cache-filling loops (cache_fill.py, issue 9)

``--only`` on run.py picks groups by these names.
"""


class Workload(object):
    """One workload of a group; ``resident`` bytes are made resident before it runs."""

    def __init__(self, name, title, resident=0, **params):
        self.name = name
        self.title = title
        self.resident = resident
        self.params = params


class Tool(object):
    """One way of running a group's workloads.

    ``env`` is added to the child's environment (MEMPULSE_DRIVER, say);
    ``package`` is the distribution it needs beyond mempulse; a tool with
    ``max_rounds`` runs in the first rounds only (a slow reference whose
    figures do not vary between rounds).
    """

    def __init__(self, name, label, env=None, package=None, max_rounds=None):
        self.name = name
        self.label = label
        self.env = env or {}
        self.package = package
        self.max_rounds = max_rounds


ORIGINAL = ("loop", "numpy")  # measured by tools.py / workloads.py
NAMES = ORIGINAL + ("fixed", "calls", "cache")


def module(name):
    """The module of a group other than the original ones."""
    if name == "fixed":
        import fixed_cost as m
    elif name == "calls":
        import call_depth as m
    elif name == "cache":
        import cache_fill as m
    else:
        raise KeyError(name)
    return m


def to_json(group_module):
    """The group's workloads and tools as they go into results-X.Y.json."""
    return {
        "title": group_module.TITLE,
        "workloads": [dict(name=w.name, title=w.title, resident=w.resident, **w.params)
                      for w in group_module.WORKLOADS],
        "tools": [{"name": t.name, "label": t.label, "env": t.env, "max_rounds": t.max_rounds}
                  for t in group_module.TOOLS],
    }
