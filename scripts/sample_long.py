#!/usr/bin/env python
# `python scripts/sample_long.py ...` in a clone runs the installed `dynamictrl-sample-long` command (dynamictrl.cli.sample_long).
import sys

from dynamictrl.cli.sample_long import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
