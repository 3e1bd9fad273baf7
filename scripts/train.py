#!/usr/bin/env python
# `python scripts/train.py ...` in a clone runs the installed `dynamictrl-train` command (dynamictrl.cli.train).
import sys

from dynamictrl.cli.train import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
