#!/usr/bin/env python
# `python tools/build_tiny_model.py ...` in a clone runs the installed `dynamictrl-build-tiny-model` command (dynamictrl.cli.build_tiny_model).
import sys

from dynamictrl.cli.build_tiny_model import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
