"""scripts/adascale_compare.py on tiny real runs: both rules at two batch
sizes and two seeds, the table's rows, and a re-run that trains nothing."""
import json
import os
import shlex

from helpers import run


def test_compare_runs_tabulates_and_skips(tmp_path, mpitrain, make_test_dataset, mpirun, tool):
    data = str(tmp_path / "data.h5")
    assert run([make_test_dataset, "good", data, 512, 16]).returncode == 0
    config = tmp_path / "tiny.ini"
    config.write_text(f"data = {data}\nmodel = 16-32-4\nepochs = 3\nlr = 0.05\nref-batch = 32\n"
                      "lr-scaling = linear\nmomentum = 0.9\n")
    out = str(tmp_path / "cmp")
    args = ["--batches", "32,128", "--seeds", "2", "--ranks", "2", "--config", str(config), "--mpitrain", mpitrain,
            "--mpirun", shlex.join(mpirun), "--out", out]
    r = tool("adascale_compare", *args, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(out, "summary.json")) as f:
        rows = {(x["mode"], x["B"]): x for x in json.load(f)}
    assert sorted(rows) == [("adascale", 32), ("adascale", 128), ("linear", 32), ("linear", 128)]
    assert all(x["n"] == 2 for x in rows.values())
    # The reference batch: 3 epochs of 16 steps under both rules (AdaScale's gain is 1 at B = ref).
    assert rows[("linear", 32)]["steps"][0] == rows[("adascale", 32)]["steps"][0] == 48
    # B = 128: linear trains 3 epochs (12 steps); AdaScale ends after 48 iterations in 12 to 48 steps.
    assert rows[("linear", 128)]["steps"][0] == 12
    assert 12 <= rows[("adascale", 128)]["steps"][0] <= 48
    with open(os.path.join(out, "adascale-B0128-s1", "summary.json")) as f:
        s = json.load(f)
    assert s["stop_reason"] == "iterations" and s["scale_invariant_iters"] >= 48
    assert "| adascale | 128 | 2 | 0 |" in open(os.path.join(out, "summary.md")).read()
    again = tool("adascale_compare", *args, timeout=60)
    assert again.returncode == 0 and again.stdout.count("skip (finished)") == 8, again.stdout
