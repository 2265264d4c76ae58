#!/usr/bin/env python3
"""The report of a global-batch sweep (docs/scaling-study.md): mpitrain_study/report.py."""
import sys

from mpitrain_study.report import main

if __name__ == "__main__":
    sys.exit(main())
