#!/usr/bin/env python3
"""AdaScale against the linear rule over seeds and batch sizes: mpitrain_study/adascale_compare.py."""
import sys

from mpitrain_study.adascale_compare import main

if __name__ == "__main__":
    sys.exit(main())
