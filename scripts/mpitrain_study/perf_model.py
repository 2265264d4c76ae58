"""A performance model of mpitrain's data-parallel step: predicted step time,
throughput, scaling efficiency and time to the target for P = 1 ... 1024 ranks,
from `mpitrain bench --json` measurements, checked against real runs.

  python3 scripts/perf_model.py --bench bench-np2.json [more] --global-batch 256,1024 \\
      [--ranks 1,2,4,...] [--steps-to-target N | --sweep DIR...] [--measured RUN_DIR...] \\
      [--calibration RUN_DIR...] [--out DIR] [--mpitrain build/mpitrain]

The model's equations, every option and the outputs (perf_model.md, .json,
.png in --out) are in docs/perf-model.md; the model itself is
perf_predictor.py. Needs numpy and matplotlib (Debian: python3-numpy
python3-matplotlib) and the mpitrain binary (for the gradient's buckets).
"""

import argparse
import json
import os
import sys

from .formatting import seconds_text
from .perf_plot import plot
from .system_python import require_numpy_matplotlib

DEFAULT_TOLERANCE = 0.15


def parse_args(argv):
    """The command line's options (perf_inputs.check_options checks their values)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="The model, its inputs and its outputs: docs/perf-model.md.")
    ap.add_argument("--bench", nargs="+", action="extend", required=True, metavar="FILE",
                    help="`mpitrain bench --json` files (one per rank count)")
    ap.add_argument("--global-batch", nargs="+", action="extend", required=True, metavar="B",
                    help="global batch sizes, e.g. 256,1024 or 256 1024")
    ap.add_argument("--ranks", nargs="+", action="extend", metavar="P",
                    help="rank counts (default: powers of two 1..1024, plus the measured runs' P)")
    tt = ap.add_mutually_exclusive_group()
    tt.add_argument("--steps-to-target", metavar="N|B:N,...",
                    help="steps to the target: one N for every B, or per B as B:N,B:N")
    tt.add_argument("--sweep", nargs="+", metavar="DIR",
                    help="sweep directories (scripts/sweep.py): the best rate's steps to the target at each B")
    ap.add_argument("--measured", nargs="+", action="extend", default=[], metavar="RUN_DIR",
                    help="training run directories to compare with (metrics.jsonl, epochs after the first)")
    ap.add_argument("--calibration", nargs="+", action="extend", default=[], metavar="RUN_DIR",
                    help="run directories (best at a small B, trained with --prefetch false) used only for the "
                         "per-step optimizer cost (time_compute_s minus the bench's forward/backward) and the read "
                         "time per row (time_data_s); not compared")
    ap.add_argument("--overlap", type=float, help="fraction of the all-reduce hidden behind backward "
                    "(default: measured, 1 - time_allreduce_s/time_comm_s, else 0)")
    ap.add_argument("--allreduce", choices=["ring", "binomial"], default="ring",
                    help="the all-reduce's cost: ring (default; the trainer's blocking MPI_Allreduce per bucket) or "
                         "binomial reduce + broadcast (Open MPI 4.1 libnbc's MPI_Iallreduce)")
    ap.add_argument("--comm-source", choices=["bench", "calibration"], default="bench",
                    help="where beta comes from: the benches' all-reduce (default), or the trainer's own all-reduce "
                         "time in the --calibration runs (time_comm_s), at their P")
    ap.add_argument("--comm-fit", choices=["in-step", "at-size", "bench"],
                    help="alpha-beta of each bench: its fit's alpha with beta through the trainer's gradient "
                         "all-reduce timed in the bench's step pattern at the shard size (in-step, default when "
                         "the benches have step rows), through its back-to-back time at the trainer's bucket "
                         "size (at-size, the default otherwise), or its own fit (bench)")
    ap.add_argument("--compute-stat", choices=["step", "avg", "max"],
                    help="t_sample from the bench's step pattern (step, default when the benches have step "
                         "rows), its average over ranks (avg, the default otherwise) or its slowest rank (max)")
    ap.add_argument("--alpha", type=float, help="per-hop latency in seconds (overrides the benches)")
    ap.add_argument("--beta", type=float, help="per-hop seconds per byte (overrides the benches)")
    ap.add_argument("--data-s-per-row", type=float, help="data wait per row on the busiest rank "
                    "(default: from the measured runs, else 0)")
    ap.add_argument("--optimizer-s", type=float, help="optimizer update per step in seconds (default: a bench "
                    "or run field, else estimated from the other measured runs, else ignored)")
    ap.add_argument("--bucket-bytes", type=int, help="the trainer's --bucket-bytes (default: the measured "
                    "runs', else the trainer's default; 0: one all-reduce)")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                    help="flag measured runs whose step time is off by more than this (default 0.15)")
    ap.add_argument("--check", action="store_true", help="exit with 1 if a measured run is off by more than "
                    "--tolerance")
    ap.add_argument("--out", default="perf-model", help="output directory (default perf-model)")
    ap.add_argument("--mpitrain", help="the binary whose `inspect --model` gives the model's gradient buckets "
                    "(default: build/mpitrain of this repository, else mpitrain on PATH)")
    ap.add_argument("--no-plot", action="store_true", help="write the tables only (no PNG, no matplotlib)")
    return ap.parse_args(argv)


def predict_table(args, model, batches, ranks, benches, steps_at):
    """{(P, B): the prediction}, with the efficiency and the time to the target."""
    table = {}
    clamped = set()
    for B in batches:
        base = model.predict(1, B)  # the efficiency's reference
        for P in ranks:
            r = model.predict(P, B)
            r["efficiency"] = base["step_s"] / (P * r["step_s"])
            if B in steps_at:
                r["steps_to_target"], r["steps_how"] = steps_at[B]
                r["time_to_target_s"] = r["steps_to_target"] * r["step_s"]
            if r["clamped"]:
                clamped.add((r["rows"], r["bench"]))
            table[(P, B)] = r
    if clamped:
        rows = sorted({c[0] for c in clamped})
        model.warnings.append(f"t_sample clamped for {len(rows)} shard size(s) outside the bench's "
                              f"({', '.join(map(str, rows[:8]))}{' ...' if len(rows) > 8 else ''} rows): "
                              "bench those sizes with --shard-sizes for a better estimate")
    top = max(b["ranks"] for b in benches)
    if max(ranks) > top:
        model.notes.append(f"Beyond P = {top} the model extrapolates with the bench at P = {top} (its t_sample "
                           "and per-hop alpha, beta): if those ranks shared cores (oversubscribed) or one "
                           "machine's memory, the larger P inherit that, which a cluster of separate nodes "
                           "would not have.")
    if P_over := [P for P in ranks for B in batches if P > B]:
        model.notes.append(f"Where P > B (e.g. P = {min(P_over)}), ranks without rows still join the "
                           "all-reduce: compute is one row, communication grows with P.")
    return table


def compare_measured(args, model, measured):
    """One row per measured run: predicted against measured step time."""
    mrows = []
    for run in measured:
        p = model.predict(run["P"], run["B"], exclude=run)
        err = (p["step_s"] - run["step_s"]) / run["step_s"]
        mrows.append(dict(run=run["name"], path=run["path"], P=run["P"], B=run["B"], nodes=run["nodes"],
                          predicted_s=p["step_s"], measured_s=run["step_s"], error=err,
                          flagged=abs(err) > args.tolerance, epochs_used=run["epochs_used"],
                          predicted=p, measured={k: run[k] for k in ("data_s", "compute_s", "wait_s", "comm_s",
                                                                      "overlap")}))
    return mrows


def markdown(args, model, table, batches, ranks, mrows):
    """perf_model.md's text (also printed)."""
    out = []
    w = out.append
    w("# Performance model of the data-parallel step\n")
    w("step = compute + data + (1 - overlap) x allreduce + optimizer, with compute = b t_sample(b), b = ceil(B/P), "
      + ("allreduce = k 2(P-1) alpha + 2(P-1)/P n beta (ring).\n" if args.allreduce == "ring" else
         "allreduce = 2 ceil(log2 P) (k alpha + n beta) (binomial reduce + broadcast).\n"))
    w("## Assumptions\n")
    for n in model.notes:
        w(f"- {n}")
    for n in model.warnings:
        w(f"- **Warning:** {n}")
    w("")
    w("## Predicted\n")
    has_ttt = any("time_to_target_s" in r for r in table.values())
    head = "| B | P | step | compute | data | all-reduce | exposed | samples/s | efficiency |" + \
        (" steps to target | time to target |" if has_ttt else "") + " bench |"
    w(head)
    w("|" + "---|" * (head.count("|") - 1))
    for B in batches:
        for P in ranks:
            r = table[(P, B)]
            line = (f"| {B} | {P} | {seconds_text(r['step_s'])} | {seconds_text(r['compute_s'])}{'*' if r['clamped'] else ''} "
                    f"| {seconds_text(r['data_s'])} | {seconds_text(r['allreduce_s'])} | {seconds_text(r['exposed_s'])} "
                    f"| {r['samples_per_s']:.4g} | {r['efficiency']:.2f} |")
            if has_ttt:
                line += (f" {r['steps_to_target']:.0f} | {seconds_text(r['time_to_target_s'])} |" if "steps_to_target" in r
                         else " - | - |")
            w(line + f" {r['bench']} |")
    w("")
    if any(r["clamped"] for r in table.values()):
        w("\\* t_sample clamped: the shard is outside the bench's shard sizes.\n")
    if mrows:
        w(f"## Predicted vs measured (tolerance {100 * args.tolerance:.0f} %)\n")
        w("| run | P | B | nodes | predicted | measured | error | |")
        w("|---|---|---|---|---|---|---|---|")
        for m in mrows:
            w(f"| {m['run']} | {m['P']} | {m['B']} | {m['nodes'] if m['nodes'] is not None else '-'} "
              f"| {seconds_text(m['predicted_s'])} | {seconds_text(m['measured_s'])} | {100 * m['error']:+.1f} % "
              f"| {'**> ' + format(100 * args.tolerance, '.0f') + ' %**' if m['flagged'] else 'ok'} |")
        w("")
        w("Measured split per step (max over ranks) against the model's:\n")
        w("| run | compute+optimizer (model / run) | data (model / run) | all-reduce exposed (model / run) "
          "| in flight (model / run) | overlap (used) |")
        w("|---|---|---|---|---|---|")
        for m in mrows:
            p, q = m["predicted"], m["measured"]
            w(f"| {m['run']} | {seconds_text(p['compute_s'] + p['optimizer_s'])} / {seconds_text(q['compute_s'])} "
              f"| {seconds_text(p['data_s'])} / {seconds_text(q['data_s'])} | {seconds_text(p['exposed_s'])} / {seconds_text(q['wait_s'])} "
              f"| {seconds_text(p['allreduce_s'])} / {seconds_text(q['comm_s'])} | {p['overlap']:.2f} |")
        w("")
    return "\n".join(out).rstrip() + "\n"


def write_outputs(args, model, benches, table, batches, ranks, mrows, text):
    """perf_model.png (unless --no-plot), .md and .json in --out; returns the exit code."""
    has_ttt = any("time_to_target_s" in r for r in table.values())
    os.makedirs(args.out, exist_ok=True)
    written = []
    if not args.no_plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        png = os.path.join(args.out, "perf_model.png")
        plot(plt, table, batches, ranks, mrows, has_ttt, args.allreduce, png)
        written.append(png)
    with open(os.path.join(args.out, "perf_model.md"), "w") as f:
        f.write(text + ("" if args.no_plot else "\n![predicted vs measured](perf_model.png)\n"))
    with open(os.path.join(args.out, "perf_model.json"), "w") as f:
        json.dump(dict(assumptions=model.notes, warnings=model.warnings, tolerance=args.tolerance,
                       allreduce=args.allreduce, comm_fit=args.comm_fit, compute_stat=args.compute_stat,
                       grad_bytes=model.grad_bytes, buckets=model.buckets, params=model.params,
                       optimizer_s=model.optimizer,
                       benches=[dict(path=b["path"], ranks=b["ranks"], threads=b["threads"], alpha_fit=b["a_fit"],
                                     beta_fit=b["b_fit"], alpha=b.get("alpha"), beta=b.get("beta"))
                                for b in benches],
                       predictions=[dict(r) for r in table.values()],
                       measured=[{k: v for k, v in m.items()} for m in mrows]), f, indent=1)
        f.write("\n")
    written += [os.path.join(args.out, "perf_model.md"), os.path.join(args.out, "perf_model.json")]
    print(f"perf_model: wrote {', '.join(written)}")
    bad = [m for m in mrows if m["flagged"]]
    if mrows:
        print(f"perf_model: {len(mrows) - len(bad)} of {len(mrows)} measured run(s) within "
              f"{100 * args.tolerance:.0f} %" + (f"; off: {', '.join(m['run'] for m in bad)}" if bad else ""))
    return 1 if (args.check and bad) else 0


def main(argv=None):
    """The command line; returns the exit code (1: --check found a run off by more than --tolerance)."""
    # First of all: a python3 without numpy re-runs the tool under Debian's.
    require_numpy_matplotlib("perf_model", "MPITRAIN_PERF_MODEL_REEXEC")
    # numpy: imported here, after the check, not on importing this module.
    from .perf_inputs import check_options, die, load_bench, load_measured, parse_int_list, steps_to_target
    from .perf_predictor import PerfModel

    args = check_options(parse_args(argv))
    benches = [load_bench(p) for p in args.bench]
    by_p = {}
    for b in benches:
        if b["ranks"] in by_p:
            die(f"two bench files at P = {b['ranks']}: {by_p[b['ranks']]['path']} and {b['path']}")
        by_p[b["ranks"]] = b
    measured = [load_measured(p) for p in args.measured]
    batches = parse_int_list(args.global_batch, "--global-batch")
    ranks = parse_int_list(args.ranks, "--ranks") if args.ranks else \
        sorted({2 ** i for i in range(11)} | {r["P"] for r in measured})
    calibration = [load_measured(p, "--calibration") for p in args.calibration]
    model = PerfModel(benches, measured, args, calibration)

    steps_at = steps_to_target(args, batches, model)
    table = predict_table(args, model, batches, ranks, benches, steps_at)
    mrows = compare_measured(args, model, measured)
    text = markdown(args, model, table, batches, ranks, mrows)
    print(text, end="")
    return write_outputs(args, model, benches, table, batches, ranks, mrows, text)


if __name__ == "__main__":
    sys.exit(main())
