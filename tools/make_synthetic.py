#!/usr/bin/env python
# `python tools/make_synthetic.py ...` in a clone runs the installed `dynamictrl-make-synthetic` command (dynamictrl.cli.make_synthetic).
import sys

from dynamictrl.cli.make_synthetic import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
