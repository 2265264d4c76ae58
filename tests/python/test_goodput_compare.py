"""scripts/goodput_compare.py on tiny real runs: a fixed batch under both
rules and the auto mode, to a target, the table's rows, and a re-run that
trains nothing."""
import json
import os
import shlex

from helpers import run


def test_goodput_compare_runs_tabulates_and_skips(tmp_path, mpitrain, make_test_dataset, mpirun, tool):
    data = str(tmp_path / "data.h5")
    assert run([make_test_dataset, "good", data, 512, 16]).returncode == 0
    config = tmp_path / "tiny.ini"
    config.write_text(f"data = {data}\nmodel = 16-32-4\nlr = 0.05\nref-batch = 32\nlr-scaling = linear\n"
                      "momentum = 0.9\n")
    out = str(tmp_path / "cmp")
    args = ["--fixed", "64:0.1,64:adascale", "--auto-range", "16:128", "--auto-lr", "0.05", "--goodput-every", "4",
            "--seeds", "2", "--target", "test_acc>=0.9", "--eval-every-samples", "128", "--epochs", "20",
            "--ref-batch", "32", "--config", str(config), "--mpitrain", mpitrain,
            "--launcher", shlex.join(mpirun + ["-np", "2"]), "--out", out]
    r = tool("goodput_compare", *args, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(out, "summary.json")) as f:
        rows = {x["mode"]: x for x in json.load(f)}
    assert sorted(rows) == ["auto 16:128, adascale lr 0.05", "fixed B=64, adascale lr 0.05", "fixed B=64, lr 0.1"]
    assert all(x["reached"] == 2 and x["time"][0] > 0 and x["samples"][0] > 0 for x in rows.values())
    # The fixed rate is given at B: the config's linear rule (ref 32) gets lr 0.05 back to 0.1.
    with open(os.path.join(out, "fixed-B00064-s1", "config.ini")) as f:
        ini = f.read()
    assert "lr = 0.05\n" in ini and "global-batch = 64\n" in ini and "eval-every-samples = 128\n" in ini
    with open(os.path.join(out, "auto-s1", "summary.json")) as f:
        s = json.load(f)
    assert s["target_reached"] and "final_global_batch" in s and 16 <= s["final_global_batch"] <= 128
    assert len(rows["auto 16:128, adascale lr 0.05"]["batches"]) == 2
    assert "| fixed B=64, lr 0.1 | 2 of 2 |" in open(os.path.join(out, "summary.md")).read()
    again = tool("goodput_compare", *args, timeout=60)
    assert again.returncode == 0 and again.stdout.count("skip (finished)") == 6, again.stdout
