#!/usr/bin/env python
# `python tools/extract_pose.py ...` in a clone runs the installed `dynamictrl-extract-pose` command (dynamictrl.cli.extract_pose).
import sys

from dynamictrl.cli.extract_pose import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
