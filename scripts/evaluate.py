#!/usr/bin/env python
# `python scripts/evaluate.py ...` in a clone runs the installed `dynamictrl-evaluate` command (dynamictrl.cli.evaluate).
import sys

from dynamictrl.cli.evaluate import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
