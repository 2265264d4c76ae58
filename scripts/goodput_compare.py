#!/usr/bin/env python3
"""--global-batch auto against fixed batches by time to a target: mpitrain_study/goodput_compare.py."""
import sys

from mpitrain_study.goodput_compare import main

if __name__ == "__main__":
    sys.exit(main())
