"""The performance model's plot: predicted step time vs P per global batch,
measured runs as points; efficiency (or time to the target) vs P."""


def plot(plt, table, batches, ranks, measured_rows, ttt, allreduce, path):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.6))
    cmap = plt.get_cmap("viridis")
    for i, B in enumerate(batches):
        color = cmap(i / max(1, len(batches) - 1) * 0.85)
        rows = [table[(P, B)] for P in ranks]
        a1.plot(ranks, [r["step_s"] * 1e3 for r in rows], ".-", color=color, label=f"predicted B={B}")
        pts = [m for m in measured_rows if m["B"] == B]
        if pts:
            a1.scatter([m["P"] for m in pts], [m["measured_s"] * 1e3 for m in pts], marker="o", s=40,
                       facecolors="none", edgecolors=color, linewidths=1.6, zorder=3, label=f"measured B={B}")
        if ttt:
            ys = [r.get("time_to_target_s") for r in rows]
            if any(y for y in ys):
                a2.plot(ranks, ys, "-", color=color, label=f"B={B}")
        else:
            a2.plot(ranks, [r["efficiency"] for r in rows], "-", color=color, label=f"B={B}")
    other = [m for m in measured_rows if m["B"] not in batches]
    if other:
        a1.scatter([m["P"] for m in other], [m["measured_s"] * 1e3 for m in other], marker="x", color="tab:red",
                   zorder=3, label="measured (other B)")
    from matplotlib.ticker import FuncFormatter
    for a in (a1, a2):
        a.set_xscale("log", base=2)
        a.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        a.set_xlabel("ranks P")
        a.grid(True, which="major", alpha=0.3)
        a.legend(fontsize=7)
    from matplotlib.ticker import LogLocator, NullFormatter
    a1.set_yscale("log")
    a1.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    a1.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    a1.yaxis.set_minor_formatter(NullFormatter())
    a1.set_ylabel("step time (ms)")
    a1.set_title(f"predicted step time ({allreduce} all-reduce, lines) vs measured runs (circles)", fontsize=9)
    if ttt:
        a2.set_yscale("log")
        a2.set_ylabel("predicted time to the target (s)")
        a2.set_title("time to the target = steps(B) x step time", fontsize=10)
    else:
        a2.axhline(1.0, color="k", ls=":", lw=1)
        a2.set_ylabel("scaling efficiency T(1) / (P T(P))")
        a2.set_title("predicted efficiency at fixed B", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
