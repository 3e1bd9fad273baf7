#!/usr/bin/env python
# `python tools/make_demo_assets.py ...` in a clone runs the installed `dynamictrl-make-demo-assets` command (dynamictrl.cli.make_demo_assets).
import sys

from dynamictrl.cli.make_demo_assets import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
