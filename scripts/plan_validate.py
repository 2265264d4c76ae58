#!/usr/bin/env python3
"""The planner against real runs: mpitrain_study/plan_validate.py."""
import sys

from mpitrain_study.plan_validate import main

if __name__ == "__main__":
    sys.exit(main())
