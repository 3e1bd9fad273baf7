#!/usr/bin/env python
# `python scripts/app.py ...` in a clone runs the installed `dynamictrl-app` command (dynamictrl.cli.app).
import sys

from dynamictrl.cli.app import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
