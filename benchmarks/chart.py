"""The PNG bar chart of a run (matplotlib; report.py calls render)."""
import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402

import summary  # noqa: E402
from report import gib  # noqa: E402

COLORS = {"loop": "#4c72b0", "loop-50M": "#55a868", "loop-2G": "#c44e52"}
MEMPULSE = ("cMemoryUsageTracer", "MemoryUsageTracer")


def render(data, cells, path):
    tools = [t for t in data["tools"] if t["name"] != "none"]
    loops = [w for w in data["workloads"] if w["line_heavy"]]
    has_numpy = any(w["name"] == "numpy" for w in data["workloads"])
    panels = [p for p in (loops and "loops", has_numpy and "numpy") if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 0.55 * len(tools) + 3.0), squeeze=False)
    labels = [t["label"] for t in tools]
    for ax, panel in zip(axes[0], panels):
        if panel == "loops":
            _loops(ax, tools, loops, cells, summary.median_rss(data))
        else:
            _numpy(ax, tools, cells)
        ax.set_yticks(range(len(tools)))
        ax.set_yticklabels(labels)
        for tick, tool in zip(ax.get_yticklabels(), tools):
            if tool["name"] in MEMPULSE:
                tick.set_fontweight("bold")
        ax.invert_yaxis()
        ax.grid(axis="x", which="both", alpha=0.3)
    m = data["machine"]
    fig.suptitle("mempulse benchmark: CPython %s on %s (%s cores, %s), %s; median of %d interleaved rounds%s"
                 % (data["python"], m["cpu"], m["cores"], m["kernel"], m["date"], data["config"]["rounds"],
                    " (quick run)" if data["config"]["quick"] else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _loops(ax, tools, loops, cells, rss):
    height = 0.8 / len(loops)
    for j, w in enumerate(loops):
        values, missing = [], []
        for i, t in enumerate(tools):
            cell = cells[w["name"]][t["name"]]
            value = cell.ns_per_event if cell.status in ("ok", "partial") else None
            if value is None:
                missing.append(i)
            values.append(max(value, 1.0) if value is not None else 0)  # log axis: floor at 1 ns
        ys = [i + (j - (len(loops) - 1) / 2.0) * height for i in range(len(tools))]
        label = "%s, RSS %s" % (w["title"].split(",")[0], gib(rss.get(w["name"], 0)))
        ax.barh(ys, values, height=height, color=COLORS.get(w["name"], None), label=label)
        for y, v, i in zip(ys, values, range(len(tools))):
            if i not in missing:
                ax.text(v * 1.08, y, "%.0f" % v, va="center", fontsize=7)
    _mark_missing(ax, tools, [cells[loops[0]["name"]][t["name"]] for t in tools])
    ax.set_xscale("log")
    ax.set_xlabel("ns added per line event (log scale; under 1 ns: bar at 1)")
    ax.set_title("line-heavy loop")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, frameon=False)


def _numpy(ax, tools, cells):
    values = []
    for t in tools:
        cell = cells["numpy"][t["name"]]
        values.append(cell.overhead * 100 if cell.status in ("ok", "partial") and cell.overhead is not None else None)
    shown = [max(v, 1.0) if v is not None else 0 for v in values]
    _mark_missing(ax, tools, [cells["numpy"][t["name"]] for t in tools])
    ax.barh(range(len(tools)), shown, color="#8172b2")
    for i, v in enumerate(values):
        if v is not None:
            ax.text(max(v, 1.0) * 1.08, i, "%+.0f%%" % v if abs(v) >= 10 else "%+.1f%%" % v, va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("overhead, % (log scale; under 1% or negative: bar at 1%)")
    ax.set_title("(a) original README numpy workload, depth 1")


def _mark_missing(ax, tools, cells):
    # A tool without numbers gets its status written where its bar would be.
    for i, cell in enumerate(cells):
        if cell.status not in ("ok", "partial"):
            ax.text(0.01, i, {"n/a": "n/a", "unavailable": "not installable"}.get(cell.status, "failed"),
                    va="center", fontsize=8, color="#555555", transform=ax.get_yaxis_transform())
