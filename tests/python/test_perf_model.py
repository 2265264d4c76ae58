"""scripts/perf_model.py: the model's equations against values worked by hand
from synthetic bench files, its outputs (tables, JSON, plot), predicted
against measured runs, its errors, and a tiny real bench.

The synthetic benches time model 16-32-4 (676 parameters); the trainer's
reduce buffer is 16 stat slots + 676 floats = 692 floats = 2768 bytes, one
bucket (mpitrain inspect --model 16-32-4, which perf_model asks).
t_sample = 8e-5 / sqrt(shard): a straight line in log-log, so the
interpolation is exact between the rows. The all-reduce fit at P = 4 is
t(n) = 4e-5 + 3e-9 n, so per hop alpha = 4e-5 / 6 and beta = 3e-9 * 4 / 6;
its row at exactly 2768 bytes measured 6e-5 s (the fit says 4.83e-5).
No timing assertions.
"""

import json
import math
import os

import pytest

from helpers import in_process, is_png, one_error_line, run, table_rows
from mpitrain_study import perf_model

N_BYTES = 2768
ALPHA, BETA = 4e-5 / 6, 3e-9 * 4 / 6

BENCH4 = {"ranks": 4, "threads_per_rank": 1, "model": "16-32-4", "params": 676, "flops_per_sample": 4000,
          "compute": [{"shard": 16, "s_per_sample_avg": 2e-05}, {"shard": 64, "s_per_sample_avg": 1e-05},
                      {"shard": 256, "s_per_sample_avg": 5e-06}, {"shard": 1024, "s_per_sample_avg": 2.5e-06}],
          "allreduce": [{"bytes": 4, "s": 4.1e-05}, {"bytes": 692, "s": 4.5e-05}, {"bytes": 2768, "s": 6e-05},
                        {"bytes": 11072, "s": 8e-05}],
          "alpha_s": 4e-05, "beta_s_per_byte": 3e-09}
BENCH1 = {"ranks": 1, "threads_per_rank": 2, "model": "16-32-4", "params": 676, "flops_per_sample": 4000,
          "compute": [{"shard": 16, "s_per_sample_avg": 1e-05}, {"shard": 1024, "s_per_sample_avg": 1e-06}],
          "allreduce": [{"bytes": 4, "s": 1e-07}], "alpha_s": 0, "beta_s_per_byte": 0}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)
    return str(path)


def write_lines(path, lines):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    return str(path)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("perf_model")


@pytest.fixture(scope="module")
def bench4(work):
    return write_json(work / "bench4.json", BENCH4)


@pytest.fixture(scope="module")
def bench1(work):
    return write_json(work / "bench1.json", BENCH1)


@pytest.fixture(scope="module")
def model(tool, mpitrain, work):
    """model(*args): runs perf_model with the binary, in this process unless
    cli=True (then scripts/perf_model.py); returns (the result, perf_model.json or None)."""
    count = [0]

    def run_model(*args, out=None, cli=False):
        count[0] += 1
        out = out or str(work / f"out{count[0]}")
        argv = [*args, "--out", out, "--mpitrain", mpitrain]
        r = tool("perf_model", *argv) if cli else in_process(perf_model.main, argv)
        path = os.path.join(out, "perf_model.json")
        data = None
        if os.path.isfile(path):
            with open(path) as f:
                data = json.load(f)
        run_model.out = out
        return r, data
    return run_model


def predictions(data):
    return {(p["P"], p["B"]): p for p in data["predictions"]}


# ---------------------------------------------------------------- (a) the equations

def test_the_equations_with_the_bench_fit(model, bench4):
    r, data = model("--bench", bench4, "--global-batch", "256,1000", "--ranks", "1,4,8,512", "--comm-fit", "bench",
                    "--overlap", "0.25", "--optimizer-s", "1e-4", "--steps-to-target", "256:100,1000:40", "--no-plot")
    assert r.returncode == 0, r.stderr
    # step = b t(b) + (1 - overlap) (2(P-1) alpha + 2(P-1)/P n beta) + optimizer,
    # b = ceil(B/P), t(b) = 8e-5/sqrt(b) (clamped to the rows: 2e-5 below 16 rows).
    pred = predictions(data)
    for (P, B), p in pred.items():
        b = math.ceil(B / P)
        compute = b * (2e-5 if b <= 16 else 8e-5 / math.sqrt(b))
        allreduce = 2 * (P - 1) * ALPHA + 2 * (P - 1) / P * N_BYTES * BETA
        step = compute + (0.75 if P > 1 else 1) * allreduce + 1e-4
        assert p["step_s"] == pytest.approx(step, rel=1e-9)
        assert p["compute_s"] == pytest.approx(compute, rel=1e-9)
        assert p["allreduce_s"] == pytest.approx(allreduce, rel=1e-9, abs=1e-30)
    # Efficiency, throughput and time to the target follow from the step time.
    e = pred[(8, 256)]
    assert e["efficiency"] == pytest.approx(pred[(1, 256)]["step_s"] / (8 * e["step_s"]), abs=1e-12)
    assert e["samples_per_s"] == pytest.approx(256 / e["step_s"], abs=1e-9)
    assert e["time_to_target_s"] == pytest.approx(100 * e["step_s"], abs=1e-12)
    assert pred[(8, 1000)]["time_to_target_s"] == pytest.approx(40 * pred[(8, 1000)]["step_s"], abs=1e-12)
    assert (data["grad_bytes"], data["buckets"], data["params"]) == (N_BYTES, 1, 676)
    # P = 8, B = 256 by hand: 32 rows x 8e-5/sqrt(32) + 0.75 x (14 alpha + 1.75 n beta) + 1e-4
    assert f"{e['step_s']:.6e}" == "6.298143e-04"


def test_binomial_all_reduce(model, bench4):
    r, data = model("--bench", bench4, "--global-batch", "256", "--ranks", "2,8,1000", "--comm-fit", "bench",
                    "--allreduce", "binomial", "--no-plot")
    assert r.returncode == 0, r.stderr
    # 2 ceil(log2 P) (alpha + n beta): 2, 6 and 20 rounds.
    assert [round(p["allreduce_s"] / (ALPHA + N_BYTES * BETA), 9) for p in data["predictions"]] == [2, 6, 20]
    assert "binomial reduce + binomial broadcast" in r.stdout


def test_comm_fit_at_size(model, bench4):
    # t(2768) = 6e-5 as measured: slope (6e-5 - 4e-5)/2768, alpha unchanged.
    r, data = model("--bench", bench4, "--global-batch", "256", "--ranks", "4,16", "--overlap", "0", "--no-plot")
    assert r.returncode == 0, r.stderr
    pred = predictions(data)
    assert pred[(4, 256)]["allreduce_s"] == pytest.approx(6e-5, abs=1e-15)
    assert pred[(16, 256)]["allreduce_s"] == pytest.approx(30 * ALPHA + 30 / 16 * N_BYTES * (2e-5 / N_BYTES) * 4 / 6,
                                                           abs=1e-15)
    assert "the bench measured 60 us" in r.stdout and "Optimizer update: ignored" in r.stdout


def test_two_benches_and_steps_from_a_sweep(model, bench1, bench4, work):
    # A sweep directory as scripts/sweep.py leaves it: B=256 reached the target in 120 steps.
    summary = {"type": "summary", "stop_reason": "target", "ranks": 2, "global_batch": 256, "lr": 0.05, "epochs": 12,
               "steps": 120, "target": "test_acc>=0.8", "target_reached": True, "target_epoch": 12,
               "target_step": 120, "target_samples": 30720, "target_time_s": 5.0}
    run_dir = write_lines(work / "sweep" / "B0256-lr0.05-np2",
                          [{"type": "header", "ranks": 2, "steps_per_epoch": 10, "config": {"global-batch": "256"}},
                           summary])
    write_json(os.path.join(run_dir, "summary.json"), summary)
    r, data = model("--bench", bench1, bench4, "--global-batch", "256", "--ranks", "1,2,4", "--comm-fit", "bench",
                    "--sweep", str(work / "sweep"), "--no-plot")
    assert r.returncode == 0, r.stderr
    pred = predictions(data)
    # P = 1: bench1 (t_sample log-log between 1e-5 at 16 rows and 1e-6 at 1024).
    assert pred[(1, 256)]["step_s"] == pytest.approx(256 * 1e-5 * (256 / 16) ** (math.log(0.1) / math.log(64)),
                                                     abs=1e-12)
    assert [p["bench"] for p in data["predictions"]] == ["P=1", "P=4", "P=4"]
    assert all(p["time_to_target_s"] == pytest.approx(120 * p["step_s"], abs=1e-12) for p in data["predictions"])
    assert "Steps to the target from the sweep" in r.stdout


@pytest.mark.parametrize("layout", [dict(ranks_on_node=4), dict(ranks_on_node=1, ranks_on_machine=4, nodes=4)],
                         ids=["one-node", "emulated-hosts"])
def test_a_bench_with_step_rows(model, work, layout):
    # bench4 plus the step pattern of 4 ranks on 2 cores (one node, or 4
    # emulated hosts of one rank on one machine, whose cores they share, so
    # the reads count twice either way): t_sample 4e-5 at 16
    # rows and 1e-5 at 256 (the compute as the job sees it), the gradient
    # all-reduce 1e-4 s after a 16-row compute and 2e-4 s after a 256-row
    # one, the optimizer inside. A calibration run without prefetch read 1 us
    # per row.
    bench = dict(BENCH4, **layout, cores_on_node=2, step_optimizer="sgd",
                 step=[dict(shard=16, s_per_sample=4e-5, allreduce_s=1e-4),
                       dict(shard=256, s_per_sample=1e-5, allreduce_s=2e-4)])
    header = dict(type="header", ranks=4, nodes=1, threads_per_rank=1, model="16-32-4", params=676,
                  config={"global-batch": "128", "bucket-bytes": "262144", "prefetch": "false"})
    epochs = [dict(type="epoch", epoch=e, step=10 * e, steps_in_epoch=10, global_batch=128, epoch_time_s=0.01,
                   time_data_s=10 * 32 * 1e-6, time_compute_s=10 * 1e-3, time_allreduce_s=1e-3, time_comm_s=1e-3)
              for e in (1, 2)]
    cal = write_lines(work / f"cal4-{len(layout)}", [header] + epochs)
    r, data = model("--bench", write_json(work / f"bench4s-{len(layout)}.json", bench), "--global-batch", "64,256,1024", "--ranks",
                    "4", "--overlap", "0", "--calibration", cal, "--no-plot")
    assert r.returncode == 0, r.stderr
    # b = 16, 64, 256 rows: compute b t(b) (t log-log: 2e-5 at 64), all-reduce
    # as measured at 16 and 256 rows (at 64 the per-hop beta in between,
    # log-log), optimizer 0, reads 1 us per row x 2 ranks per core (no
    # calibration had a core per rank, so the only one is used).
    a = 4e-5
    mid = a + math.sqrt((1e-4 - a) * (2e-4 - a))
    want = {64: (16 * 4e-5, 1e-4), 256: (64 * 2e-5, mid), 1024: (256 * 1e-5, 2e-4)}
    for p in data["predictions"]:
        compute, allreduce = want[p["B"]]
        b = p["rows"]
        assert p["compute_s"] == pytest.approx(compute, rel=1e-9)
        assert p["allreduce_s"] == pytest.approx(allreduce, rel=1e-9)
        assert p["data_s"] == pytest.approx(2 * b * 1e-6, rel=1e-9)
        assert p["optimizer_s"] == 0.0
        assert p["step_s"] == pytest.approx(compute + allreduce + 2 * b * 1e-6, rel=1e-9)
    with open(os.path.join(model.out, "perf_model.md")) as f:
        md = f.read()
    for phrase in ("in the step pattern (--comm-fit in-step)", "--compute-stat step",
                   "Optimizer update: part of t_sample", "multiplied by r"):
        assert phrase in md, phrase


# ---------------------------------------------------------------- (b) outputs, predicted vs measured

def measured_run(path, step_s):
    """A run at P = 4, B = 256 of model 16-32-4 (64 rows per rank). Per step:
    data wait 64 us (1 us per row), all-reduce exposed 30 us of 60 us in
    flight (overlap 0.5), compute 740 us. The first epoch is slow: it must
    not count."""
    steps = 100
    lines = [dict(type="header", ranks=4, nodes=1, threads_per_rank=1, model="16-32-4", params=676,
                  config={"global-batch": "256", "bucket-bytes": "262144"})]
    for e in (1, 2, 3):
        lines.append(dict(type="epoch", epoch=e, step=e * steps, steps_in_epoch=steps, global_batch=256,
                          epoch_time_s=(3 if e == 1 else 1) * step_s * steps, time_data_s=64e-6 * steps,
                          time_compute_s=7.4e-4 * steps, time_allreduce_s=30e-6 * steps, time_comm_s=60e-6 * steps))
    return write_lines(path, lines)


@pytest.fixture(scope="module")
def runs(work):
    return measured_run(work / "runs" / "ok", 8.8e-4), measured_run(work / "runs" / "slow", 1.1e-3)


def test_outputs_and_predicted_vs_measured(model, bench4, runs):
    # The bench's forward and backward are 64 x 1e-5 = 640 us of the 740 us of
    # compute: the optimizer is estimated at 100 us (from the other run).
    # Model (at-size): 640 + 64 + 0.5 x 60 + 100 = 834 us. Run ok measures
    # 880 us (-5.2 %), run slow 1100 us (-24.2 %).
    r, data = model("--bench", bench4, "--global-batch", "256", "--measured", *runs, cli=True)
    assert r.returncode == 0, r.stderr
    assert is_png(os.path.join(model.out, "perf_model.png"))
    with open(os.path.join(model.out, "perf_model.md")) as f:
        md = f.read()
    for phrase in ("## Assumptions", "estimate (leave-one-out)", "Overlap: as measured",
                   "Data wait per step = b x the measured wait per row", "![predicted vs measured](perf_model.png)"):
        assert phrase in md, phrase
    rows = table_rows(md)
    assert [row[1] for row in rows if row[0] == "256"] == [str(2 ** i) for i in range(11)]
    compared = [row for row in rows if len(row) == 8 and row[0] in ("ok", "slow")]
    assert [row[6] for row in compared] == ["-5.2 %", "-24.2 %"]
    assert [row[7] for row in compared] == ["ok", "**> 15 %**"]
    assert data["measured"][0]["predicted_s"] == pytest.approx(8.34e-4, abs=1e-12)
    assert data["measured"][0]["epochs_used"] == [2, 3]
    assert "perf_model: 1 of 2 measured run(s) within 15 %; off: slow" in r.stdout
    assert r.stdout.startswith(md.split("\n![predicted vs measured]")[0])  # the Markdown is what was printed


def test_comm_source_calibration(model, bench4, runs):
    # The trainer's own all-reduce (time_comm_s, 60 us per step at P = 4) sets
    # beta through the ring formula, alpha from the bench: 6 alpha + 1.5 n
    # beta = 60 us, so at P = 8: 14 alpha + 1.75 n beta.
    r, data = model("--bench", bench4, "--global-batch", "256", "--ranks", "4,8", "--calibration", runs[0],
                    "--comm-source", "calibration", "--allreduce", "ring", "--no-plot")
    assert r.returncode == 0, r.stderr
    assert [round(p["allreduce_s"] * 1e9, 3) for p in data["predictions"]] == \
        [60000.0, round((14 * 4e-5 / 6 + 1.75 * 2e-5 / 1.5) * 1e9, 3)]
    assert [round(p["optimizer_s"] * 1e9, 3) for p in data["predictions"]] == [100000.0, 100000.0]
    assert "P = 4: 60 us per step (the bench" in r.stdout


def test_check_sets_the_exit_code(model, bench4, runs):
    r, _ = model("--bench", bench4, "--global-batch", "256", "--measured", *runs, "--check", "--no-plot", cli=True)
    assert r.returncode == 1, r.stderr
    r, _ = model("--bench", bench4, "--global-batch", "256", "--measured", runs[0], "--check", "--no-plot")
    assert r.returncode == 0, r.stderr


def test_bucket_bytes_from_the_binary(model, bench4, runs, mpitrain):
    # 64-byte buckets: the binary cuts 16-32-4's reduce buffer into one bucket
    # per parameter tensor but the first (the stats ride with dense0/W).
    r, data = model("--bench", bench4, "--global-batch", "256", "--ranks", "4", "--bucket-bytes", "64", "--no-plot")
    assert r.returncode == 0, r.stderr
    layout = json.loads(run([mpitrain, "inspect", "--model", "16-32-4", "--bucket-bytes", "64", "--json"]).stdout)
    assert data["buckets"] == len(layout["buckets"]) == 3
    assert data["grad_bytes"] == 4 * layout["reduce_floats"] == N_BYTES
    assert "3 bucket(s) of 2, 0, 1 kB, cut as the trainer cuts model 16-32-4" in r.stdout


def test_the_gradient_holds_the_arena_padding(model, work):
    # 16-30-4: dense1/W starts at 512, not 510, and dense1/b at 640, not 632
    # (each tensor is 64-byte aligned), so the gradient is 16 stat slots + 644
    # floats (634 parameters) = 2640 bytes.
    bench = write_json(work / "bench-16-30-4.json", dict(BENCH4, model="16-30-4", params=634))
    r, data = model("--bench", bench, "--global-batch", "256", "--ranks", "4", "--no-plot")
    assert r.returncode == 0, r.stderr
    assert (data["grad_bytes"], data["buckets"], data["params"]) == (2640, 1, 634)


# ---------------------------------------------------------------- (c) errors

def expect_error(r, phrase):
    assert r.returncode != 0
    assert one_error_line(r.stderr, "perf_model: error: ", phrase), r.stderr


def test_bench_file_errors(model, work, bench4):
    out = str(work / "c")
    r, _ = model("--bench", str(work / "nope.json"), "--global-batch", "256", out=out, cli=True)
    expect_error(r, f"--bench {work / 'nope.json'}: cannot read it")
    (work / "empty.json").write_text("")
    r, _ = model("--bench", str(work / "empty.json"), "--global-batch", "256", out=out)
    expect_error(r, "is not the JSON object `mpitrain bench --json` writes (the file is empty)")
    (work / "garbled.json").write_text(json.dumps(BENCH4)[:150])
    r, _ = model("--bench", str(work / "garbled.json"), "--global-batch", "256", out=out)
    expect_error(r, "(it does not parse)")
    r, _ = model("--bench", write_json(work / "foreign.json", {"type": "header", "version": "0.1.0"}),
                 "--global-batch", "256", out=out)
    expect_error(r, "no valid 'ranks' field")
    nocompute = {("compute_x" if k == "compute" else k): v for k, v in BENCH4.items()}
    r, _ = model("--bench", write_json(work / "nocompute.json", nocompute), "--global-batch", "256", out=out)
    expect_error(r, "no 'compute' rows")
    r, _ = model("--bench", bench4, "--global-batch", "256", "--compute-stat", "step", out=out)
    expect_error(r, "--compute-stat step needs benches with 'step' rows")
    r, _ = model("--bench", bench4, "--global-batch", "256", "--comm-fit", "in-step", out=out)
    expect_error(r, "--comm-fit in-step needs benches with 'step' rows")
    assert not os.path.exists(out)


def test_a_model_the_binary_does_not_build(model, work, tool, bench4):
    # The buckets come from the binary only: a bench of a model it refuses,
    # or whose parameter count it does not match, is an error, as is no binary.
    r, _ = model("--bench", write_json(work / "badspec.json", dict(BENCH4, model="16-x-4")), "--global-batch", "256")
    expect_error(r, "bad --model '16-x-4'")
    r, _ = model("--bench", write_json(work / "other.json", dict(BENCH4, model="16-33-4")), "--global-batch", "256")
    expect_error(r, "the bench timed a model of 676 parameters")
    r = tool("perf_model", "--bench", bench4, "--global-batch", "256", "--out", str(work / "c"), "--mpitrain",
             str(work / "absent"))
    expect_error(r, "is not an executable")


def test_a_one_rank_bench_needs_alpha_and_beta(model, bench1):
    r, _ = model("--bench", bench1, "--global-batch", "256", "--ranks", "1,2")
    expect_error(r, "give --alpha and --beta")
    r, _ = model("--bench", bench1, "--global-batch", "256", "--ranks", "1,2", "--alpha", "1e-6", "--beta", "1e-9",
                 "--no-plot")
    assert r.returncode == 0, r.stderr
    assert "from the command line (--alpha/--beta)" in r.stdout


@pytest.mark.parametrize("option, phrase", [
    ("--optimizer bogus", "unknown --optimizer 'bogus'"),
    ("--step-seconds -1", "--step-seconds must be between 0 and 3600"),
    ("--shard-sizes 8,x", "bad --shard-sizes item 'x'"),
    ("--overlap maybe", "--overlap must be auto, on or off"),
    ("--bucket-bytes -5", "--bucket-bytes must be >= 0"),
])
def test_bench_bad_options(mpitrain, mpirun, work, option, phrase):
    # One error on every rank's behalf (rank 0 prints it), and no JSON file.
    out = work / "c-bench.json"
    r = run(mpirun + ["-n", "2", mpitrain, "bench", "--model", "16-32-4", *option.split(), "--json", out], timeout=60)
    assert r.returncode != 0
    assert one_error_line(r.stderr, "mpitrain", phrase) and "mpitrain: error: " in r.stderr, r.stderr
    assert not out.exists()


# ---------------------------------------------------------------- (d) a tiny real run

def test_a_tiny_real_bench_run_and_model(model, mpitrain, mpirun, make_test_dataset, work):
    data = str(work / "data.h5")
    assert run([make_test_dataset, "good", data, 600, 16]).returncode == 0
    bench = work / "bench-np2.json"
    r = run(mpirun + ["-n", "2", mpitrain, "bench", "--model", "16-32-4", "--shard-sizes", "8,32", "--min-bytes", "64",
                      "--max-bytes", "16384", "--iters", "3", "--warmup", "1", "--threads", "1", "--step-seconds",
                      "0.2", "--json", bench], timeout=60)
    assert r.returncode == 0, r.stderr
    with open(bench) as f:
        b = json.load(f)
    # The step pattern at each shard: compute and all-reduce both measured, the placement recorded.
    assert [row["shard"] for row in b["step"]] == [8, 32]
    assert all(row["s_per_sample"] > 0 and row["allreduce_s"] > 0 and row["step_s"] >= row["compute_s"]
               for row in b["step"])
    assert b["ranks_on_node"] == 2 and b["step_optimizer"] == "sgd"
    assert all(row["steps"] >= 3 for row in b["step"])
    run_dir = str(work / "real-run")
    r = run(mpirun + ["-n", "2", mpitrain, "train", "--data", data, "--model", "16-32-4", "--global-batch", "64",
                      "--epochs", "2", "--lr", "0.05", "--threads", "1", "--progress", "none", "--eval-split", "none",
                      "--run-dir", run_dir], timeout=60)
    assert r.returncode == 0, r.stderr
    r, result = model("--bench", str(bench), "--global-batch", "64,128", "--ranks", "1,2,4,1024", "--measured", run_dir,
                      "--steps-to-target", "50", cli=True)
    assert r.returncode == 0, r.stderr
    assert is_png(os.path.join(model.out, "perf_model.png"))
    assert len(result["predictions"]) == 8
    m = result["measured"][0]
    assert (m["P"], m["B"]) == (2, 64) and m["measured_s"] > 0
    assert "| 64 | 1024 |" in r.stdout and "## Predicted vs measured" in r.stdout


def test_one_all_reduce_when_the_trainer_turns_overlap_off(model, work):
    # 784-1024-1024-10: 1863690 parameters + 16 stat slots = 7454824 bytes,
    # which inspect cuts into 2 buckets at the default 262144 bytes (a tensor
    # larger than a bucket goes alone). With overlap off (--overlap auto with
    # 2 ranks on 2 cores) the trainer reduces it in one call: the bench's
    # gradient all-reduce and the runs' headers say so, and then the latency
    # term is paid once, not twice.
    bench = dict(BENCH4, model="784-1024-1024-10", params=1863690)
    one = write_json(work / "bench-one-call.json", dict(bench, gradient_allreduce={"buckets": 1, "bytes": 7454824}))
    cut = write_json(work / "bench-buckets.json", dict(bench, gradient_allreduce={"buckets": 2, "bytes": 7454824}))
    for path, buckets in ((one, 1), (cut, 2)):
        r, data = model("--bench", path, "--global-batch", "256", "--ranks", "4", "--comm-fit", "bench", "--no-plot")
        assert r.returncode == 0, r.stderr
        assert (data["grad_bytes"], data["buckets"]) == (7454824, buckets)
        p = data["predictions"][0]
        assert p["allreduce_s"] == pytest.approx(buckets * 6 * ALPHA + 1.5 * 7454824 * BETA, rel=1e-9)
    # A measured run whose header says overlap off wins over the bench's cut.
    epoch = {"type": "epoch", "epoch": 1, "global_batch": 256, "steps_in_epoch": 10, "epoch_time_s": 1.0}
    run_dir = write_lines(work / "run-overlap-off", [
        {"type": "header", "ranks": 4, "params": 1863690, "allreduce_overlap": False,
         "config": {"global-batch": "256", "bucket-bytes": "262144"}}, epoch, dict(epoch, epoch=2)])
    r, data = model("--bench", cut, "--global-batch", "256", "--ranks", "4", "--comm-fit", "bench",
                    "--measured", run_dir, "--no-plot")
    assert r.returncode == 0, r.stderr
    assert data["buckets"] == 1 and "overlap off, one all-reduce" in r.stdout
