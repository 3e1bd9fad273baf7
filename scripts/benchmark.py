#!/usr/bin/env python
# `python scripts/benchmark.py ...` in a clone runs the installed `dynamictrl-benchmark` command (dynamictrl.cli.benchmark).
import sys

from dynamictrl.cli.benchmark import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
