"""The commands: one module per command (``dynamictrl.cli.infer`` is ``dynamictrl-infer`` and ``scripts/infer.py``),
and here what they share: one-line user errors, ``--debug``, argument checks, logging.

Every command module is written as::

    parser = ArgumentParser(...)          # a bad command line: one line `error: ...`, status 2

    @run_cli
    def main(argv=None) -> int:
        args = parser.parse_args(argv)    # parse first: --help never imports torch
        configure_logging()               # the library logs, never prints: show its INFO lines
        path = existing_file("--ref", args.ref, "a PNG or JPEG image")   # check inputs ...
        ...                               # ... then import torch/diffusers and load models

A :class:`~dynamictrl.errors.UserError` raised anywhere below ``main`` (a missing file, a corrupt video, a bad
value) is printed as ``error: <what> (<what would be right>)`` and ``main`` returns 2; ``--debug`` or
``DYNAMICTRL_DEBUG=1`` shows its traceback instead. Any other exception is a bug and keeps its traceback.
This module imports neither torch nor diffusers.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dynamictrl.data.frames import is_frame_count
from dynamictrl.errors import UserError

DEBUG_ENV_VAR = "DYNAMICTRL_DEBUG"
USER_ERROR_STATUS = 2  # argparse's status for a bad command line; the same for every user error
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
TIMED_LOG_FORMAT = "%(asctime)s " + LOG_FORMAT  # long runs (training)


def debug_requested(argv: list[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get(DEBUG_ENV_VAR, "") not in ("", "0")


def configure_logging(level: int | str = logging.INFO, fmt: str = LOG_FORMAT, datefmt: str | None = None) -> None:
    """Show the library's log records on stderr: ``dynamictrl/`` logs through ``logging.getLogger(__name__)`` and
    never prints, so every command calls this once its arguments are parsed. A no-op when logging is already set up
    (a caller's own configuration, pytest's capture)."""
    logging.basicConfig(level=level, format=fmt, datefmt=datefmt)


def run_cli(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap an entry point's ``main(argv)``: a :class:`UserError` becomes one line on stderr and status 2."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        try:
            return main(argv) or 0
        except UserError as err:
            if debug_requested(None if argv is None else [str(a) for a in argv]):
                raise
            print(f"error: {err}", file=sys.stderr)
            return USER_ERROR_STATUS

    return wrapper


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's contract: a bad command line is one line ``error: ...`` (status 2), not the
    usage block; every parser has ``--debug``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--debug", action="store_true", help=f"show the traceback of an error (or set {DEBUG_ENV_VAR}=1)"
        )

    def error(self, message: str):
        self.exit(USER_ERROR_STATUS, f"error: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------- checks of single arguments


@contextmanager
def for_flag(flag: str, expected: str | None = None, also: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Re-raise a user error (and ``also``, e.g. ``ValueError`` of a narrow call) as one naming ``flag``."""
    try:
        yield
    except (UserError, FileNotFoundError, *also) as err:
        if isinstance(err, UserError):
            what, hint = err.what, expected or err.expected
        else:
            what, hint = str(err), expected
        raise UserError(f"{flag}: {what}", hint) from err


def existing_file(flag: str, path: str | Path | None, expected: str) -> Path | None:
    """``path`` if it is a readable file (``None`` passes through); else a :class:`UserError` naming ``flag``."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder", expected)
    if not path.is_file():
        raise UserError(f"{flag} {path}: no such file", expected)
    if not os.access(path, os.R_OK):
        raise UserError(f"{flag} {path}: not readable", expected)
    return path


def existing_dir(flag: str, path: str | Path | None, expected: str) -> Path | None:
    """``path`` if it is a folder (``None`` passes through); else a :class:`UserError` naming ``flag``."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if path.is_file():
        raise UserError(f"{flag} {path} is a file, not a folder", expected)
    if not path.is_dir():
        raise UserError(f"{flag} {path}: no such folder", expected)
    return path


def at_least(flag: str, value: float | None, minimum: float) -> None:
    if value is not None and value < minimum:
        raise UserError(f"{flag} {value}", f"at least {minimum}")


def frame_count(flag: str, value: int | None, ratio: int = 4) -> None:
    """A clip length the VAE can encode: ``k*ratio+1`` frames with k >= 1 (None passes through)."""
    if value is not None and not is_frame_count(value, ratio, min_k=1):
        raise UserError(f"{flag} {value}", f"k*{ratio}+1 frames with k >= 1, e.g. {2 * ratio + 1}, {12 * ratio + 1}")


def read_image_arg(flag: str, path: str | Path, mode: str = "RGB"):
    """Decode the image at ``path`` (uint8 array); a missing or undecodable file names ``flag``."""
    from dynamictrl.data.io import IMAGE_SUFFIXES, read_image

    expected = f"an image file: {', '.join(IMAGE_SUFFIXES)}"
    existing_file(flag, path, expected)
    with for_flag(flag, expected):
        return read_image(path, mode=mode)


def read_video_arg(flag: str, path: str | Path):
    """Decode the video at ``path`` (``(frames, fps)``); a missing or corrupt file names ``flag``."""
    from dynamictrl.data.io import VIDEO_SUFFIXES, read_video

    expected = f"a video file: {', '.join(VIDEO_SUFFIXES)}"
    existing_file(flag, path, expected)
    with for_flag(flag, expected):
        return read_video(path)


# ---------------------------------------------------------------- training configs (scripts/train.py, tools/)

CONFIG_HINT = "see configs/train/ for examples and docs/training.md for the keys"


def load_train_config(path: str | Path, overrides: list[str], check_paths: bool = True):
    """``--config`` + ``key=value`` overrides, loaded and checked: with ``check_paths`` every path it names must
    exist (so a typo is reported before a model or dataset loads)."""
    import yaml

    existing_file("--config", path, "a training config YAML, e.g. configs/train/tiny_cpu.yaml")
    try:
        content = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        raise UserError(f"--config {path} is not valid YAML ({str(err).splitlines()[0]})", CONFIG_HINT) from err
    if content is not None and not isinstance(content, dict):
        raise UserError(f"--config {path} is not a YAML mapping of config sections", CONFIG_HINT)
    from dynamictrl.training.config import load_config

    try:
        cfg = load_config(path, overrides)
    except ValueError as err:
        raise UserError(str(err), CONFIG_HINT) from err
    if check_paths:
        check_train_paths(cfg)
    return cfg


def check_train_paths(cfg, read_latents: bool = True) -> None:
    """Every folder a training config names exists and holds what the run will read (the latent cache too, unless
    ``read_latents`` is False: tools/prepare_dataset.py writes it)."""
    model, data = cfg.model, cfg.data
    if model.source in ("base", "pretrained"):
        if model.base_path is None:
            raise UserError(f"model.source={model.source} without model.base_path", "a local CogVideoX I2V folder")
        base = existing_dir("model.base_path", model.base_path, "a local CogVideoX I2V pipeline folder")
        parts = ["scheduler", "vae"] + (["tokenizer", "text_encoder"] if model.use_text else [])
        parts += ["transformer"] if model.source == "base" else []
        missing = [part for part in parts if not (base / part).is_dir()]
        if missing:
            raise UserError(f"model.base_path {base} has no {', '.join(missing)}/", "a CogVideoX I2V pipeline folder")
        if model.source == "base":
            import json

            from dynamictrl.training.config import check_preset

            config = existing_file("model.base_path", base / "transformer/config.json", "a diffusers transformer")
            try:
                check_preset(model, json.loads(config.read_text()), str(config.parent))
            except ValueError as err:
                raise UserError(str(err)) from None
    if model.source == "pretrained":
        if model.transformer_path is None:
            raise UserError("model.source=pretrained without model.transformer_path", "a DynamiCtrl transformer folder")
        folder = existing_dir("model.transformer_path", model.transformer_path, "a DynamiCtrl transformer folder")
        existing_file("model.transformer_path", folder / "config.json", "a transformer folder with config.json")
    if read_latents and data.latents is not None:
        folder = existing_dir("data.latents", data.latents, "a latent cache written by tools/prepare_dataset.py")
        existing_file("data.latents", folder / "index.json", "a latent cache written by tools/prepare_dataset.py")
    else:
        root = existing_dir("data.root", data.root, "a dataset folder with videos/, poses/ and prompts.txt")
        from dynamictrl.data.dataset import list_clips

        with for_flag("data.root", "a dataset folder: videos/, poses/ (one pose video per clip), prompts.txt",
                      also=(ValueError,)):  # fmt: skip
            list_clips(root)  # a listing, no video is read
    resume = cfg.checkpoint.resume_from
    if resume not in (None, "latest"):
        existing_dir("checkpoint.resume_from", resume, "a checkpoint folder, or 'latest'")
