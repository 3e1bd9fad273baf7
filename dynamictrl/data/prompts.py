"""The official ``prompts.txt`` format, read and written in one place.

One line per clip, ``NAME.mp4#####caption`` (the clip's file name, five ``#``, the caption). :func:`write_prompts` /
:func:`read_prompts` round-trip exactly; a caption may not contain a line break or the separator, and a name may not
contain the separator (both raise ``ValueError``). :func:`read_clip_prompts` is the reading that datasets and the
evaluator match clips with.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SEPARATOR = "#####"


def _check_entry(name: str, caption: str) -> None:
    if not name or SEPARATOR in name or "\n" in name or "\r" in name:
        raise ValueError(f"clip name {name!r} must be non-empty without line breaks or {SEPARATOR!r}")
    if SEPARATOR in caption or "\n" in caption or "\r" in caption:
        raise ValueError(f"caption for {name!r} contains a line break or {SEPARATOR!r}: {caption!r}")


def write_prompts(path: str | Path, captions: dict[str, str] | Iterable[tuple[str, str]]) -> Path:
    """Write ``{name: caption}`` (order kept) as ``name#####caption`` lines."""
    items = list(captions.items() if isinstance(captions, dict) else captions)
    seen = set()
    for name, caption in items:
        _check_entry(name, caption)
        if name in seen:
            raise ValueError(f"clip name {name!r} appears twice")
        seen.add(name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for name, caption in items:
            f.write(f"{name}{SEPARATOR}{caption}\n")
    return path


def read_prompts(path: str | Path) -> dict[str, str]:
    """Read a ``prompts.txt``; blank lines are skipped, malformed lines and duplicate names raise ``ValueError``."""
    path = Path(path)
    out: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r") if line.endswith("\n") else line
            if not line.strip():
                continue
            if SEPARATOR not in line:
                raise ValueError(f"{path}:{number}: expected 'NAME.mp4{SEPARATOR}caption', got {line[:80]!r}")
            name, caption = line.split(SEPARATOR, 1)
            if name in out:
                raise ValueError(f"{path}:{number}: clip name {name!r} appears twice")
            out[name] = caption
    return out


def read_clip_prompts(path: str | Path, stem: bool = False) -> dict[str, str]:
    """``prompts.txt`` as ``{video file name: caption}`` (or ``{name without suffix: caption}`` with ``stem``): a
    folder before the name is dropped, name and caption are stripped. Parsing and its errors: :func:`read_prompts`."""
    key = (lambda name: Path(name.strip()).stem) if stem else (lambda name: Path(name.strip()).name)
    return {key(name): caption.strip() for name, caption in read_prompts(path).items()}
