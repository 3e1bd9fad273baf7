#!/usr/bin/env python
# `python scripts/summarize_results.py ...` in a clone runs the installed `dynamictrl-summarize-results` command (dynamictrl.cli.summarize_results).
import sys

from dynamictrl.cli.summarize_results import __doc__, main  # noqa: F401  (__doc__: the command's help text, also for readers of this file)

if __name__ == "__main__":
    sys.exit(main())
