"""Every entry point answers --help without importing torch, diffusers or transformers, and its help agrees with
the docs (defaults, paths, flag names)."""

import ast
import importlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from dynamictrl.data.io import read_video

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = sorted(str(p.relative_to(ROOT)) for d in ("scripts", "tools") for p in (ROOT / d).glob("*.py"))
#: The installed commands (pyproject.toml [project.scripts]): name -> "module:function" (no tomllib on Python 3.10).
COMMANDS = dict(
    re.findall(
        r'^([\w-]+) = "([\w.:]+)"$',
        (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0],
        re.M,
    )
)

# The help runs with these packages unimportable: a script that imports one before parsing fails.
BLOCK_HEAVY_IMPORTS = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "diffusers", "transformers"):
            raise ImportError("imported before the arguments were parsed: " + name)
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
# The same for an installed command: argv = [name, "module:function", args...].
BLOCK_HEAVY_IMPORTS_COMMAND = BLOCK_HEAVY_IMPORTS.replace(
    'runpy.run_path(sys.argv[0], run_name="__main__")',
    'import importlib; module, _, function = sys.argv.pop(1).partition(":")\n'
    "sys.exit(getattr(importlib.import_module(module), function)())",
)


def load(entry_point: str):
    """The command module behind ``scripts/X.py`` / ``tools/X.py``: ``dynamictrl.cli.X``."""
    return importlib.import_module(f"dynamictrl.cli.{Path(entry_point).stem}")


def wrapped_module(entry_point: str) -> str | None:
    """The ``dynamictrl.cli`` module a wrapper file imports its ``main`` from (None if it defines its own)."""
    for node in ast.parse((ROOT / entry_point).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and any(alias.name == "main" for alias in node.names):
            return node.module
    return None


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_help_needs_no_torch_diffusers_or_transformers(entry_point):
    cmd = [sys.executable, "-c", BLOCK_HEAVY_IMPORTS, str(ROOT / entry_point), "--help"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and "--debug" in proc.stdout  # the shared parser of the contract


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_installed_command_help_needs_no_torch_diffusers_or_transformers(command):
    cmd = [sys.executable, "-c", BLOCK_HEAVY_IMPORTS_COMMAND, command, COMMANDS[command], "--help"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {command} ") and "--debug" in proc.stdout


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_script_is_a_thin_wrapper_of_its_command_module(entry_point):
    """scripts/X.py and tools/X.py hold no logic and no sys.path insert: they run ``dynamictrl.cli.X.main``."""
    source = (ROOT / entry_point).read_text(encoding="utf-8")
    assert "sys.path" not in source
    assert wrapped_module(entry_point) == f"dynamictrl.cli.{Path(entry_point).stem}"
    assert len(source.splitlines()) < 12


def test_every_command_has_a_wrapper_that_runs_the_same_main():
    """``dynamictrl-X`` and ``python scripts|tools/X.py`` are one command (same ``main``, so the same help)."""
    wrappers = {wrapped_module(e): e for e in ENTRY_POINTS}
    assert len(COMMANDS) >= 6
    for command, target in sorted(COMMANDS.items()):
        module, function = target.split(":")
        assert function == "main" and module in wrappers, f"{command}: no scripts/ or tools/ wrapper runs {module}"
        assert command == "dynamictrl-" + Path(wrappers[module]).stem.replace("_", "-")


def command_in(text: str, script: str) -> list[str]:
    """The arguments of the first ``python SCRIPT ...`` command in a Markdown/docstring text (continuations joined)."""
    joined = re.sub(r"\\\s*\n\s*", " ", text)
    line = next(line for line in joined.splitlines() if f"python {script} " in line)
    return shlex.split(line.split(f"python {script} ", 1)[1].split("#")[0])


def test_train_vae_defaults_are_the_recipe_of_the_shipped_vae():
    train_vae = load("scripts/train_vae.py")
    card = (ROOT / "dynamictrl/assets/models/dynamictrl-tiny/README.md").read_text()
    recipe = vars(train_vae.parse_args(command_in(card, "scripts/train_vae.py")))
    defaults = vars(train_vae.parse_args(["--out", recipe["out"]]))
    differs = {
        k: (defaults[k], v) for k, v in recipe.items() if k not in ("eval_clips", "eval_frames") and defaults[k] != v
    }
    assert not differs, f"train_vae.py defaults differ from the model card's recipe: {differs}"
    shipped = json.loads((ROOT / "dynamictrl/assets/models/dynamictrl-tiny/vae/config.json").read_text())
    for key in ("block_out_channels", "latent_channels", "norm_num_groups"):
        assert defaults[key] == shipped[key], key


def test_build_tiny_model_help_names_the_folder_train_vae_writes():
    """train_vae.py writes the final VAE to OUT/vae; the base command in build_tiny_model.py's help reads it."""
    vae_doc = load("scripts/train_vae.py").__doc__
    out = command_in(vae_doc, "scripts/train_vae.py")[1]  # --out OUT
    assert "written to OUT/vae/" in vae_doc
    base = command_in(load("tools/build_tiny_model.py").__doc__, "tools/build_tiny_model.py")
    assert base[:3] == ["base", "--vae", f"{out}/vae"]


def test_make_demo_assets_defaults_match_the_shipped_pose_videos():
    defaults = load("tools/make_demo_assets.py").build_parser().parse_args([])
    assert defaults.frames == len(read_video(ROOT / "dynamictrl/assets/demo/pose.mp4")[0])
    assert defaults.long_frames == len(read_video(ROOT / "dynamictrl/assets/demo/pose_long.mp4")[0])


@pytest.mark.parametrize("script", ["scripts/infer.py", "scripts/sample_long.py"])
def test_clip_length_is_clip_frames_everywhere_with_frames_as_alias(script):
    parser = load(script).build_parser()
    assert parser.parse_args(["--ref", "r.png", "--pose", "p.mp4", "--clip-frames", "9"]).clip_frames == 9
    assert parser.parse_args(["--ref", "r.png", "--pose", "p.mp4", "--frames", "13"]).clip_frames == 13
    assert "--clip-frames" in parser.format_help()


def test_infer_help_and_readme_pair_the_same_base_with_the_official_transformer():
    pairs = [
        re.findall(r"--model (\S+) --transformer (\S+)", re.sub(r"\\\s*\n\s*", " ", text))
        for text in ((ROOT / "README.md").read_text(), load("scripts/infer.py").__doc__)
    ]
    assert pairs[0] and pairs[0] == pairs[1]
