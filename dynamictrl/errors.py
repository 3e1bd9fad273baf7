"""The one exception type for mistakes in what a user gave (a path, a file, a value), as opposed to bugs.

Library code raises :class:`UserError` (or a subclass, e.g. ``dynamictrl.data.io.VideoReadError``) where the cause
is the input; the command-line layer (:mod:`dynamictrl.cli`) prints it as one line ``error: <what> (<expected>)``
and exits with status 2, while any other exception keeps its traceback. No torch import here: entry points use it
before the heavy imports.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


class UserError(Exception):
    """A bad input: ``what`` went wrong, ``expected`` says what would be right (shown in brackets)."""

    def __init__(self, what: str, expected: str | None = None):
        super().__init__(what)
        self.what = what
        self.expected = expected

    def __str__(self) -> str:
        return f"{self.what} ({self.expected})" if self.expected else self.what


# a Hub repository id: "name" or "org/name", nothing that looks like a file-system path
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def looks_like_local_path(name: str | os.PathLike) -> bool:
    """True for anything that can only be a file-system path (absolute, ``./``, ``~``, several ``/``, a Path)."""
    if isinstance(name, Path):
        return True
    text = os.fspath(name)
    return os.path.exists(text) or not _HUB_ID.match(text) or text.startswith(".")


def check_local_model_folder(
    path: str | os.PathLike, what: str, needs: tuple[str, ...] = ("config.json",), subfolder: str | None = None
) -> Path:
    """``path`` (or ``path/subfolder``) as an existing folder holding ``needs``; else a :class:`UserError`
    naming ``what`` (e.g. ``--transformer``) and the missing file, so no loader falls back to the Hub."""
    folder = Path(path).expanduser() / (subfolder or "")
    listing = ", ".join(needs)
    if not folder.exists():
        raise UserError(
            f"{what} {folder}: no such folder", f"a local model folder with {listing}; nothing is downloaded"
        )
    if not folder.is_dir():
        raise UserError(f"{what} {folder} is a file, not a folder", f"a local model folder with {listing}")
    missing = [name for name in needs if not (folder / name).is_file()]
    if missing:
        raise UserError(f"{what} {folder} has no {', '.join(missing)}", f"a local model folder with {listing}")
    return folder
