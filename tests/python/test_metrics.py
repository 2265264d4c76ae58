"""The shared readers of run directories (mpitrain_study.metrics) and the
shared number formatting (mpitrain_study.formatting)."""

import json
import math

from mpitrain_study import formatting, metrics

# A diverged run's metrics.jsonl, as src/train/run_log.cpp writes it: it ends
# with the diverged line; the summary ({"type": "summary", "stop_reason":
# "diverged", ...}) goes to summary.json only.
LINES = [
    dict(type="header", ranks=2, config={"global-batch": "64"}),
    dict(type="step", epoch=1, step=10, loss=1.5),
    dict(type="eval", epoch=1, step=15, test_acc=0.5),
    dict(type="epoch", epoch=1, step=20, test_acc=0.6),
    dict(type="step", epoch=2, step=30, loss=0.9),
    dict(type="epoch", epoch=2, step=40, test_acc=0.7),
    dict(type="diverged", epoch=3, step=41, lr=1.0, loss=59.4, grad_norm=1e3, reason="loss"),
]
SUMMARY = dict(type="summary", stop_reason="epochs", epochs=2, steps=40)  # a finished run's last line


def write_lines(path, lines, tail=""):
    with open(path, "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
        f.write(tail)


def test_run_metrics_by_type(tmp_path):
    # A partial last line (a run killed mid-write) and a line that is not an
    # object are left out; every other line is kept, in order.
    write_lines(tmp_path / "metrics.jsonl", LINES[:3] + [3] + LINES[3:], tail='{"type": "epoch", "epo')
    m = metrics.read_metrics(str(tmp_path))
    assert m.lines == LINES
    assert m.header == LINES[0]
    assert [s["step"] for s in m.steps] == [10, 30]
    assert [e["step"] for e in m.evals] == [15]
    assert [e["epoch"] for e in m.epochs] == [1, 2]
    assert m.diverged == LINES[6]
    assert m.summary is None  # diverged: no summary line
    # The file path works as well as the directory.
    assert metrics.read_metrics(str(tmp_path / "metrics.jsonl")).lines == LINES


def test_run_metrics_of_a_finished_run(tmp_path):
    write_lines(tmp_path / "metrics.jsonl", LINES[:6] + [SUMMARY])
    m = metrics.read_metrics(str(tmp_path))
    assert m.summary == SUMMARY and m.diverged is None


def test_run_metrics_of_an_unfinished_run(tmp_path):
    write_lines(tmp_path / "metrics.jsonl", LINES[1:4])
    m = metrics.read_metrics(str(tmp_path))
    assert m.header is None and m.summary is None and m.diverged is None
    assert len(m.epochs) == 1
    assert metrics.read_metrics(str(tmp_path / "absent")).lines == []


def test_read_json_whole_file_or_last_line(tmp_path):
    (tmp_path / "pretty.json").write_text(json.dumps({"a": [1, 2]}, indent=1))
    assert metrics.read_json(str(tmp_path / "pretty.json")) == {"a": [1, 2]}
    write_lines(tmp_path / "lines.jsonl", [{"n": 1}, {"n": 2}])
    assert metrics.read_json(str(tmp_path / "lines.jsonl")) == {"n": 2}
    (tmp_path / "garbled.json").write_text('{"a": 1')
    assert metrics.read_json(str(tmp_path / "garbled.json")) is None
    assert metrics.read_json(str(tmp_path / "absent.json")) is None
    assert metrics.parse_json_text("") is None


def test_read_summary_only_of_finished_runs(tmp_path):
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "summary.json").write_text(json.dumps({"stop_reason": "target", "steps": 7}) + "\n")
    assert metrics.read_summary(str(finished)) == {"stop_reason": "target", "steps": 7}
    diverged = tmp_path / "diverged"  # its summary is in summary.json only
    diverged.mkdir()
    write_lines(diverged / "metrics.jsonl", LINES)
    (diverged / "summary.json").write_text(json.dumps({"type": "summary", "stop_reason": "diverged"}) + "\n")
    assert metrics.read_summary(str(diverged))["stop_reason"] == "diverged"
    for name, text in (("no-reason", '{"steps": 7}'), ("garbled", '{"stop_reason": "tar'), ("list", "[1, 2]")):
        d = tmp_path / name
        d.mkdir()
        (d / "summary.json").write_text(text)
        assert metrics.read_summary(str(d)) is None, name
    assert metrics.read_summary(str(tmp_path / "absent")) is None


def test_numbers():
    assert metrics.num("0.25") == 0.25 and metrics.num(3) == 3.0
    assert metrics.num(None) is None and metrics.num("x") is None and metrics.num({}) is None
    assert math.isinf(metrics.num("inf"))
    assert metrics.finite_num("inf") is None and metrics.finite_num(float("nan")) is None
    assert metrics.finite_num("2e-3") == 2e-3


def test_formatting():
    assert formatting.lr_text(0.0125) == "0.0125" and formatting.lr_text(0.1 * 3) == "0.3"
    assert formatting.duration_text(59.4) == "59s" and formatting.duration_text(187) == "3m07s"
    assert [formatting.seconds_text(s) for s in (None, 123.4, 12.34, 3.214e-3, 4.56e-5)] == \
        ["-", "123 s", "12.3 s", "3.21 ms", "45.6 us"]
    assert formatting.cell(12800.0) == "12800" and formatting.cell(0.123456) == "0.1235"
    assert formatting.cell(None) == "-" and formatting.cell(float("inf")) == "-"
    assert formatting.cell(0.02, "{:.6g}") == "0.02" and formatting.cell(None, none="n/a") == "n/a"
    assert [formatting.with_unit(v, u) for v, u in ((None, ""), (float("nan"), ""), (0.00342, "s"), (2.5, "s"),
                                                     (0.0071, "%"), (117197.3, ""), (63.44, ""))] == \
        ["n/a", "n/a", "3.420 ms", "2.50 s", "0.7%", "117,197", "63.4"]
