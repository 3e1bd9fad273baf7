"""Train DynamiCtrl from a YAML config.

    accelerate launch [--config_file configs/accelerate/X.yaml] scripts/train.py --config configs/train/Y.yaml \
        [key=value ...]

Examples of overrides: ``train.max_steps=100 data.root=/data/tiktok checkpoint.resume_from=latest``.
See docs/training.md for the configs, the data layout and the 5B recipes.
"""

from __future__ import annotations

import json

from dynamictrl.cli import TIMED_LOG_FORMAT, ArgumentParser, configure_logging, load_train_config, run_cli


@run_cli
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        description="Train DynamiCtrl (run it with `accelerate launch` or `torchrun` for several processes).",
        epilog="Any number of key=value overrides may follow, e.g. train.max_steps=10 data.root=/data.",
    )
    parser.add_argument("--config", required=True, help="training config, e.g. configs/train/tiny_cpu.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of config entries")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING)")
    args = parser.parse_args(argv)

    configure_logging(args.log_level.upper(), TIMED_LOG_FORMAT, datefmt="%H:%M:%S")
    # every path is checked before a model or dataset loads
    cfg = load_train_config(args.config, args.overrides, check_paths=not args.print_config)
    from dynamictrl.training import Trainer, to_yaml

    if args.print_config:
        print(to_yaml(cfg))
        return 0
    summary = Trainer(cfg).train()
    if summary["rank"] == 0:
        print(json.dumps({k: summary[k] for k in ("global_step", "steps_this_run", "steps_per_second", "world_size")}))
    return 0
