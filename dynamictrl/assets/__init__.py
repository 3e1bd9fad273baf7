"""Files shipped inside the package: the embedded tiny model and the demo inputs.

They are package data (``[tool.setuptools.package-data]`` in pyproject.toml), so a non-editable ``pip install .``
finds them next to this module, whatever the working directory.
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
#: The embedded tiny DynamiCtrl pipeline folder (diffusers layout): the default model of every command.
EMBEDDED_MODEL_DIR = ASSETS_DIR / "models" / "dynamictrl-tiny"
#: The demo inputs of ``dynamictrl-infer --demo``: reference.png, pose.mp4, prompt.txt (and a long pose video).
DEMO_DIR = ASSETS_DIR / "demo"
