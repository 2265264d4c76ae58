"""mpitrain's study tools: the batch-size sweep, its report, the performance
model and the benchmark set (docs/scaling-study.md, docs/perf-model.md).

Command lines: scripts/<tool>.py, or `python3 -m mpitrain_study.<tool>` from
scripts/. The model's layout, FLOPs and gradient buckets come from the
binary (`mpitrain inspect --model SPEC --json`, model_layout.py); metrics
files are read by metrics.py.
"""
