#!/usr/bin/env python3
"""The global-batch sweep of the scaling study (docs/scaling-study.md): mpitrain_study/sweep.py."""
import sys

from mpitrain_study.sweep import main

if __name__ == "__main__":
    sys.exit(main())
