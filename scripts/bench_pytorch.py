#!/usr/bin/env python3
"""The PyTorch DDP peer of mpitrain train for the benchmark: mpitrain_study/bench_pytorch.py."""
import sys

from mpitrain_study.bench_pytorch import main

if __name__ == "__main__":
    sys.exit(main())
