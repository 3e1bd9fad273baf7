#!/usr/bin/env python
# `python scripts/infer.py ...` in a clone runs the installed `dynamictrl-infer` command (dynamictrl.cli.infer).
import sys

from dynamictrl.cli.infer import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
