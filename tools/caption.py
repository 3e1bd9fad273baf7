#!/usr/bin/env python
# `python tools/caption.py ...` in a clone runs the installed `dynamictrl-caption` command (dynamictrl.cli.caption).
import sys

from dynamictrl.cli.caption import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
