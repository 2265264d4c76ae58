#!/usr/bin/env python3
"""The performance model of the data-parallel step (docs/perf-model.md): mpitrain_study/perf_model.py."""
import sys

from mpitrain_study.perf_model import main

if __name__ == "__main__":
    sys.exit(main())
