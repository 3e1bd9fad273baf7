#!/usr/bin/env python
# `python tools/prepare_dataset.py ...` in a clone runs the installed `dynamictrl-prepare-dataset` command (dynamictrl.cli.prepare_dataset).
import sys

from dynamictrl.cli.prepare_dataset import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
