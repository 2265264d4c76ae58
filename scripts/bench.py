#!/usr/bin/env python3
"""The performance benchmark set (README, "Performance"): mpitrain_study/bench.py."""
import sys

from mpitrain_study.bench import main

if __name__ == "__main__":
    sys.exit(main())
