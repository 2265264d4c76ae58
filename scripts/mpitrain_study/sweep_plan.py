"""The grid of a sweep (global batches x rank counts x rates) as runs, each
an explicit `mpitrain train` command, and OUT/sweep.json, which records them
for the next invocation and for report.py."""

import json
import math
import os
import shlex
import sys

from .formatting import listed, lr_text
from .metrics import is_deterministic, read_header, read_json, read_summary

DETERMINISTIC_UNIT = 32  # mpitrain train's --deterministic-unit default


def parse_list(text, kind, what):
    try:
        values = [kind(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise SystemExit(f"sweep: error: {what} takes a comma-separated list of numbers (got '{text}')")
    if not values:
        raise SystemExit(f"sweep: error: {what} is empty")
    return values


def powers_of_two(lo, hi):
    if lo < 1 or hi < lo:
        raise SystemExit(f"sweep: error: need 1 <= --batch-min <= --batch-max (got {lo}, {hi})")
    out, b = [], 1
    while b < lo:
        b *= 2
    while b <= hi:
        out.append(b)
        b *= 2
    if not out:
        raise SystemExit(f"sweep: error: no power of two between --batch-min {lo} and --batch-max {hi}")
    return out


def parse_per_batch(items, kind, what):
    """['32:1,2', '8192:0.5'] -> {32: [1.0, 2.0], 8192: [0.5]}"""
    table = {}
    for item in items or []:
        if ":" not in item:
            raise SystemExit(f"sweep: error: {what} takes B:VALUES, e.g. 8192:0.5,1 (got '{item}')")
        b, values = item.split(":", 1)
        try:
            table[int(b)] = parse_list(values, kind, what)
        except ValueError:
            raise SystemExit(f"sweep: error: {what}: '{b}' is not a global batch")
    return table


def rule_lr(args, batch):
    """The rate of multiplier 1 at global batch `batch`: the scaling rule, capped."""
    ratio = batch / args.ref_batch
    scale = {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[args.lr_rule]
    lr = args.base_lr * scale
    if args.lr_max > 0:
        lr = min(lr, args.lr_max)
    return lr


def deterministic_unit(args):
    """Rows per unit of the sweep's --deterministic runs, 0 when it is off.
    --deterministic-unit needs --deterministic; neither may come through
    --extra-args, as the sweep records them and checks finished runs."""
    for token in shlex.split(args.extra_args):
        if token.split("=", 1)[0] in ("--deterministic", "--deterministic-unit"):
            raise SystemExit(f"sweep: error: pass {token.split('=', 1)[0]} to sweep.py itself, not in --extra-args "
                             "(the sweep records it and checks finished runs against it)")
    if args.deterministic_unit is not None:
        if not args.deterministic:
            raise SystemExit("sweep: error: --deterministic-unit needs --deterministic")
        if args.deterministic_unit < 1:
            raise SystemExit(f"sweep: error: --deterministic-unit must be >= 1 (got {args.deterministic_unit})")
    if not args.deterministic:
        return 0
    return args.deterministic_unit or DETERMINISTIC_UNIT


def deterministic_args(unit):
    """The mpitrain options of a sweep with units of `unit` rows (0: off)."""
    return ["--deterministic", "--deterministic-unit", str(unit)] if unit else []


def parse_seeds(text):
    """--seeds: '1,2,3' (the seeds) or '3' (a count: seeds 1, 2, 3); a single
    seed is '7,' . None when not given (runs take the config's seed and
    their names no -sS suffix)."""
    if not text:
        return None
    text = text.replace(" ", "")
    if "," not in text:
        try:
            count = int(text)
        except ValueError:
            raise SystemExit(f"sweep: error: --seeds takes a count or a comma-separated list of seeds (got '{text}')")
        if count < 1:
            raise SystemExit(f"sweep: error: --seeds: the count must be >= 1 (got {count})")
        return list(range(1, count + 1))
    seeds = list(dict.fromkeys(parse_list(text, int, "--seeds")))
    if any(s < 0 for s in seeds):
        raise SystemExit("sweep: error: --seeds must be >= 0")
    return seeds


def grid_options(args):
    """Checks the options of seeds, evaluations and grid extension; sets
    args.seed_list (None without --seeds)."""
    args.seed_list = parse_seeds(getattr(args, "seeds", ""))
    extra = [t.split("=", 1)[0] for t in shlex.split(args.extra_args)]
    for opt, own in (("--seed", "--seeds"), ("--eval-every-steps", "--eval-every-steps"),
                     ("--stop-at-target", "--target-hold"), ("--target-hold", "--target-hold")):
        if opt in extra and (own != "--seeds" or args.seed_list is not None):
            raise SystemExit(f"sweep: error: pass {own} to sweep.py itself, not {opt} in --extra-args "
                             "(the sweep records it and reads the runs by it)")
    if args.target_hold < 1:
        raise SystemExit(f"sweep: error: --target-hold must be >= 1 (got {args.target_hold})")
    if args.eval_every_steps < 0:
        raise SystemExit("sweep: error: --eval-every-steps must be >= 0")
    if args.max_grid_extensions < 0:
        raise SystemExit("sweep: error: --max-grid-extensions must be >= 0")


def make_runs(args, b, m, ranks, seeds, **fields):
    """The runs of one (B, multiplier): one per rank count and seed (seeds
    None: one, without --seed)."""
    unit = deterministic_unit(args)
    extra = shlex.split(args.extra_args)
    epochs_at = {b: v[0] for b, v in parse_per_batch(args.epochs_at, int, "--epochs-at").items()}
    base = rule_lr(args, b)
    lr_str = lr_text(base * m)
    runs = []
    for seed in (seeds if seeds is not None else [None]):
        for p in ranks:
            name = f"B{b:04d}-lr{lr_str}-np{p}" + (f"-s{seed}" if seed is not None else "")
            warmup = args.warmup_epochs if b > args.warmup_above_batch else 0.0
            train = [args.mpitrain, "train"]
            if args.config:
                train += ["--config", args.config]
            if args.data:
                train += ["--data", args.data]
            if args.model:
                train += ["--model", args.model]
            train += ["--global-batch", str(b), "--lr-scaling", "none", "--lr", lr_str,
                      "--warmup-epochs", f"{warmup:g}"]
            if warmup > 0:
                # Warmup starts from the rule's rate at the reference batch, as
                # Goyal et al. (2017) do (the trainer's own default with a scaling
                # rule; with an explicit rate it would start from 0).
                start = min(1.0, args.base_lr * m / float(lr_str))
                train += ["--warmup-start-factor", f"{start:.6g}"]
            # mpitrain stops where the target has held --target-hold K
            # evaluations in a row (at the first of them, as the sweep reads it).
            train += ["--epochs", str(epochs_at.get(b, args.epochs)), "--target", args.target, "--stop-at-target"]
            if args.target_hold > 1:
                train += ["--target-hold", str(args.target_hold)]
            train += ["--metrics", "", "--checkpoint-dir", "",  # the run directory's own
                      "--checkpoint-every-epochs", "0", "--progress", "none"]
            if args.metrics_every_steps > 0:
                train += ["--metrics-every-steps", str(args.metrics_every_steps)]
            if args.eval_every_steps > 0:
                train += ["--eval-every-steps", str(args.eval_every_steps)]
            if seed is not None:
                train += ["--seed", str(seed)]
            train += deterministic_args(unit)
            train += extra
            runs.append(dict(name=name, global_batch=b, ranks=p, lr=float(lr_str),
                             lr_multiplier=m, rule_lr=base, warmup_epochs=warmup,
                             epochs=epochs_at.get(b, args.epochs), seed=seed, target_hold=args.target_hold,
                             eval_every_steps=args.eval_every_steps, deterministic=unit > 0,
                             deterministic_unit=unit, train=train, **fields))
    return runs


def plan_runs(args):
    """Every run of the initial grid, in execution order, each a dict (see
    sweep.json). Sets args.grid_batches, args.grid_ranks and
    args.grid_multipliers ({B: the initial multipliers}) for grid extension."""
    deterministic_unit(args)
    grid_options(args)
    if args.batches:
        batches = sorted(set(parse_list(args.batches, int, "--batches")))
    else:
        batches = powers_of_two(args.batch_min, args.batch_max)
    ranks = parse_list(args.ranks, int, "--ranks")
    if any(p < 1 for p in ranks) or any(b < 1 for b in batches):
        raise SystemExit("sweep: error: --ranks and global batches must be >= 1")
    multipliers = parse_list(args.lr_multipliers, float, "--lr-multipliers")
    per_batch = parse_per_batch(args.lr_multipliers_at, float, "--lr-multipliers-at")
    epochs_at = parse_per_batch(args.epochs_at, int, "--epochs-at")
    for b in list(per_batch) + list(epochs_at):
        if b not in batches:
            raise SystemExit(f"sweep: error: B={b} of --lr-multipliers-at/--epochs-at is not in the grid {batches}")
    if any(m <= 0 for ms in [multipliers, *per_batch.values()] for m in ms):
        raise SystemExit("sweep: error: rate multipliers must be > 0")
    seeds = args.seed_list
    runs = []
    for b in batches:
        for m in per_batch.get(b, multipliers):
            for r in make_runs(args, b, m, ranks, seeds, grid="initial"):
                if any(x["name"] == r["name"] for x in runs):
                    continue  # two multipliers that round to the same rate (e.g. under --lr-max)
                runs.append(r)
    args.grid_batches = batches
    args.grid_ranks = ranks
    args.grid_multipliers = {b: sorted(set(per_batch.get(b, multipliers))) for b in batches}
    # Seed by seed (a sweep cut short by its budget has whole seeds), and
    # within a seed round k runs the k-th closest multiplier to 1 at every B:
    # round 0 is multiplier 1 (or the one closest to it), so a sweep cut
    # short still has one rate at every B.
    def round_of(r):
        ms = sorted(set(per_batch.get(r["global_batch"], multipliers)), key=lambda m: (abs(math.log(m)), m))
        return ms.index(r["lr_multiplier"])
    seed_order = seeds or [None]
    runs.sort(key=lambda r: (seed_order.index(r["seed"]), round_of(r), ranks.index(r["ranks"]), r["global_batch"]))
    return runs


def run_dir(args, run):
    return os.path.join(args.out, run["name"])


def finished(path):
    """The run's summary.json when it is complete (parses, has a stop_reason), else None."""
    return read_summary(path)


def planned_runs(path):
    """{name: run} of a sweep.json; {} when it is missing or garbled."""
    plan = read_json(path)
    try:
        return {r["name"]: r for r in (plan.get("runs", []) if isinstance(plan, dict) else [])}
    except (KeyError, TypeError):
        return {}


def earlier_plan(args):
    """{name: run} of OUT/sweep.json as the previous invocation left it."""
    return planned_runs(os.path.join(args.out, "sweep.json"))


def skip_note(args, run):
    """' (trained with other options: ...)' when the finished run's command differs."""
    old = args.earlier.get(run["name"])
    if not old or old.get("train") == run["train"]:
        return ""
    return "; NOTE: it was trained with other options (remove its directory to re-run it with these)"


def check_determinism(args, runs):
    """Refuses (SystemExit) to mix deterministic and other runs in one sweep
    directory: every finished run of the grid, and of the earlier
    invocations' sweep.json, must have been trained as this invocation asks
    (mpitrain's metrics header says: "deterministic", "deterministic_unit";
    a missing header or field counts as not deterministic). Such runs are
    not re-run either: their directories are the user's to remove."""
    unit = deterministic_unit(args)
    names = list(dict.fromkeys([r["name"] for r in runs] + sorted(args.earlier)))
    wrong = []
    for name in names:
        path = os.path.join(args.out, name)
        if finished(path) is None:
            continue  # not run yet, or half-finished: it trains (again) with this sweep's options
        header = read_header(path)
        if not unit and is_deterministic(header):
            wrong.append(name)
        elif unit and not is_deterministic(header):
            wrong.append(f"{name} (not deterministic)")
        elif unit and header.get("deterministic_unit") != unit:
            wrong.append(f"{name} (units of {header.get('deterministic_unit')} rows)")
    if not wrong:
        return
    if unit:
        raise SystemExit(
            f"sweep: error: --deterministic: {len(wrong)} finished run(s) in {args.out} were not trained with "
            f"--deterministic --deterministic-unit {unit}: {listed(wrong)}; a deterministic sweep does not reuse "
            "them: remove their directories to train them again, or sweep into another --out")
    raise SystemExit(
        f"sweep: error: {len(wrong)} finished run(s) in {args.out} were trained with --deterministic: "
        f"{listed(wrong)}; pass --deterministic (and their --deterministic-unit) to continue this sweep, "
        "or sweep into another --out")


def describe(summary):
    reason = summary.get("stop_reason")
    if reason == "diverged":
        return f"diverged at step {summary.get('steps')}"
    if summary.get("target_reached"):
        return (f"target reached at epoch {summary.get('target_epoch')}: "
                f"{summary.get('target_step')} steps, {summary.get('target_samples')} samples, "
                f"{summary.get('target_time_s', 0):.1f}s")
    return (f"target not reached ({reason} after {summary.get('epochs')} epochs, "
            f"{summary.get('steps')} steps, test_acc {summary.get('test_acc')})")


def write_plan(args, runs):
    """OUT/sweep.json: the grid and every run, merged with the runs of earlier invocations."""
    path = os.path.join(args.out, "sweep.json")
    old = planned_runs(path)
    for r in runs:
        if r["name"] in old and finished(run_dir(args, r)) is not None:
            continue  # skipped: the entry says how it was trained
        old[r["name"]] = r
    plan = dict(name=args.name, target=args.target, base_lr=args.base_lr, ref_batch=args.ref_batch,
                lr_rule=args.lr_rule, lr_max=args.lr_max, seeds=args.seed_list, target_hold=args.target_hold,
                eval_every_steps=args.eval_every_steps, max_grid_extensions=args.max_grid_extensions,
                grid_extensions=getattr(args, "grid_notes", {}), deterministic=args.deterministic,
                deterministic_unit=deterministic_unit(args), command=sys.argv,
                runs=sorted(old.values(), key=lambda r: (r["global_batch"], r["lr"], r["ranks"],
                                                          r.get("seed") if r.get("seed") is not None else -1)))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(plan, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
