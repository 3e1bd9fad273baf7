#!/usr/bin/env python
# `python tools/animate_dataset.py ...` in a clone runs the installed `dynamictrl-animate-dataset` command (dynamictrl.cli.animate_dataset).
import sys

from dynamictrl.cli.animate_dataset import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
