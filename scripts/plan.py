#!/usr/bin/env python3
"""The (B, P) planner: best global batch per rank count, time to target, node-hours, frontier (mpitrain_study/plan.py)."""
import sys

from mpitrain_study.plan import main

if __name__ == "__main__":
    sys.exit(main())
