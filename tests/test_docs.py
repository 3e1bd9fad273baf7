"""Every shell command in README.md, docs/ and the model card is run (shrunk) or at least parsed.

Commands are collected from ```bash blocks and from inline code that starts a repository command (``python ...``,
``accelerate launch ...``, ``bash tools/...``, ``scripts/X.py --flag``, ...). Each one is then

* **run** on the CPU when :data:`RUN` lists it (shrunk by the edits in that table, in a scratch folder where the
  repository's folders are linked, in doc order so a doc's commands can use each other's outputs), or
* **parsed**: the script's own argparse parser must accept the flags (its ``main`` is stopped right after parsing),
  a training command's ``key=value`` overrides must load with the strict config schema, and every repository file it
  names (``configs/...``, ``dynamictrl/assets/...``, ...) must exist. An installed command (``dynamictrl-infer ...``)
is checked as the ``scripts/``/``tools/`` file that wraps the same ``main``.

A command that can be neither (an unknown program) fails the test, so a doc cannot name a flag, file or step that
does not exist. Placeholders of the docs (``DIR``, ``N``, ``X.yaml``, ``[optional ...]``, ``a|b|c``) are filled in
by :data:`PLACEHOLDERS` and :func:`expand`.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.util
import io
import itertools
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    ROOT / "dynamictrl/assets/models/dynamictrl-tiny/README.md",
]
REPO_DIRS = ("configs/", "docs/", "dynamictrl/", "scripts/", "tests/", "tools/")

# ------------------------------------------------------------------------------------------------ the visible tables

# Commands run on the CPU (key: the start of the command as the doc writes it, whitespace collapsed) and how each is
# shrunk: text replacements, then extra arguments appended. Every key must match a doc command (stale keys fail).
RUN: dict[str, tuple[dict[str, str], str]] = {
    # docs/training.md, quick start on a CPU: toy data -> latent cache -> a few training steps
    "python -c 'from dynamictrl.data.toy import write_toy_dataset;": ({"num_clips=8": "num_clips=2"}, ""),
    "python tools/prepare_dataset.py --config configs/train/tiny_cpu.yaml --out data/toy/latents": ({}, ""),
    "accelerate launch --config_file configs/accelerate/cpu.yaml scripts/train.py "
    "--config configs/train/tiny_cpu.yaml data.latents=data/toy/latents": (
        {},
        "train.max_steps=2 checkpoint.every_steps=2 logging.report_to=[]",
    ),
    # ... and animate with the trained run (the journey: toy data -> training -> MP4)
    "python scripts/infer.py --model runs/tiny_cpu/final": ({}, "--steps 1"),
    # the model card's metrics: test clips -> animate with the shipped model -> evaluate
    "python tools/make_synthetic.py --out data/puppet/test9 --num 32": ({"--num 32": "--num 2"}, ""),
    "python tools/animate_dataset.py --data data/puppet/test9 --model dynamictrl/assets/models/dynamictrl-tiny": (
        {"--steps 10": "--steps 1"},
        "",
    ),
    "python scripts/evaluate.py --gt data/puppet/test9 --pred outputs/eval/pred-other-pose": ({}, ""),
}

# Placeholders the docs use: (flag, value) pairs first, then bare values; None drops the value.
PLACEHOLDERS: dict[tuple[str | None, str], str | None] = {
    ("--config", "..."): "configs/train/tiny_cpu.yaml",
    ("--config", "CFG"): "configs/train/tiny_cpu.yaml",
    (None, "configs/accelerate/X.yaml"): "configs/accelerate/cpu.yaml",
    (None, "configs/train/Y.yaml"): "configs/train/tiny_cpu.yaml",
    (None, "N"): "2",
}

# Programs that are not this repository's: what is checked instead of running them.
#   huggingface-cli download REPO FILE... : every FILE is a name the code looks for
#   pip install -e '.[EXTRA]'            : the extra exists in pyproject.toml
#   export NAME=...                      : NAME is read somewhere in dynamictrl/
#   mkdir                                : nothing to check

# The installed commands (pyproject.toml [project.scripts]) and the scripts/ or tools/ file that runs the same main.
INSTALLED_COMMANDS = {
    f"dynamictrl-{path.stem.replace('_', '-')}": str(path.relative_to(ROOT))
    for path in sorted([*(ROOT / "scripts").glob("*.py"), *(ROOT / "tools").glob("*.py")])
    if f"\ndynamictrl-{path.stem.replace('_', '-')} = " in (ROOT / "pyproject.toml").read_text()
}

# ------------------------------------------------------------------------------------------------ collecting

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
INLINE = re.compile(
    r"`((?:python|accelerate launch|torchrun|bash|make|pytest|dynamictrl-[a-z-]+) [^`]+|(?:scripts|tools)/\w+\.py --?\w[^`]*)`"
)


@dataclass(frozen=True)
class DocCommand:
    doc: str
    line: int
    text: str  # whitespace collapsed, comments removed
    mention: bool = False  # inline `scripts/X.py --flag ...`: a flag named in prose, not a whole command

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def collect() -> list[DocCommand]:
    commands = []
    for doc in DOCS:
        name, text = str(doc.relative_to(ROOT)), doc.read_text(encoding="utf-8")
        for block in FENCE.finditer(text):
            if block.group(1) not in SHELL_LANGUAGES:
                continue
            first, pending, start = text[: block.start(2)].count("\n") + 1, "", None
            for offset, line in enumerate(block.group(2).splitlines()):
                start = first + offset if start is None else start
                if line.rstrip().endswith("\\"):  # continued on the next line
                    pending += line.rstrip()[:-1] + " "
                    continue
                tokens = shlex.split(pending + line, comments=True)
                if tokens:
                    commands.append(DocCommand(name, start, shlex.join(tokens)))
                pending, start = "", None
        prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
        for span in INLINE.finditer(prose):
            command = " ".join(span.group(1).split())
            mention = command.startswith(("scripts/", "tools/"))
            line = prose[: span.start()].count("\n") + 1
            commands.append(DocCommand(name, line, "python " + command if mention else command, mention))
    return commands


COMMANDS = collect()


def run_entry(command: DocCommand) -> tuple[dict[str, str], str] | None:
    for prefix, edits in RUN.items():
        if command.text.startswith(prefix):
            return edits
    return None


# ------------------------------------------------------------------------------------------------ placeholders


def expand(tokens: list[str]) -> list[list[str]]:
    """Fill the doc's placeholders: ``[optional args]`` kept (dropped when they hold ``...``), a trailing ``...``
    dropped, ``a|b|c`` expanded into one argument list per alternative, :data:`PLACEHOLDERS` substituted."""
    kept, group = [], None
    for token in tokens:
        if group is None and token.startswith("["):
            group, token = [], token[1:]
        if group is not None:
            closing = token.endswith("]")
            group.append(token[:-1] if closing else token)
            if closing:
                if "..." not in group:
                    kept.extend(t for t in group if t)
                group = None
            continue
        kept.append(token)
    if kept and kept[-1] == "..." and not (len(kept) > 1 and kept[-2].startswith("-")):
        kept.pop()
    filled = []
    for i, token in enumerate(kept):
        flag = kept[i - 1] if i else None
        for key in ((flag, token), (None, token)):
            if key in PLACEHOLDERS:
                token = PLACEHOLDERS[key]
                break
        if token is not None:
            filled.append(token)
    options = [t.split("|") if re.fullmatch(r"[\w.-]+(\|[\w.-]+)+", t) else [t] for t in filled]
    return [list(choice) for choice in itertools.product(*options)]


# ------------------------------------------------------------------------------------------------ parse mode


class Parsed(BaseException):
    """Raised at a script's argparse call (after parsing, or instead of it), so nothing after it runs."""

    def __init__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace | None = None):
        super().__init__()
        self.parser, self.namespace = parser, namespace


def _load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"doc_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def parse_script(script: str, args: list[str] | None) -> Parsed:
    """What ``script``'s ``main`` parses from ``args`` (its parser's own error, as a failure, otherwise); with
    ``args=None`` only its parser, unparsed."""
    path = ROOT / script
    assert path.is_file(), f"{script} does not exist"
    module = _load_script(path)
    original = argparse.ArgumentParser.parse_args

    seen = []

    def parse_then_stop(self, argv=None, namespace=None):
        seen.append(self)
        raise Parsed(self, None if args is None else original(self, argv, namespace))

    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(stderr):
        patch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
        try:
            module.main(args or [])
        except Parsed as parsed:
            return parsed
        except SystemExit as exit_:
            if exit_.code in (0, None) and seen:  # --help: printed, nothing to check further
                return Parsed(seen[-1])
            pytest.fail(f"{script} refuses {shlex.join(args)}: {stderr.getvalue().strip() or exit_}")
    pytest.fail(f"{script}'s main returned without parsing arguments with argparse")


def check_repo_paths(tokens: list[str]) -> None:
    for token in tokens:
        for value in (token, token.partition("=")[2]):
            path = value.split("@")[0]
            if path.startswith(REPO_DIRS):
                assert (ROOT / path).exists() or any(ROOT.glob(path)), f"{path} does not exist in the repository"


def check_mention(script: str, args: list[str]) -> None:
    """Every ``--flag`` named exists in the script's parser (or the sub-command's), and a value given to a flag
    with choices is one of them."""
    parser = parse_script(script, None).parser
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if subcommands and args and args[0] in subcommands[0].choices:
        parser, args = subcommands[0].choices[args[0]], args[1:]
    for i, token in enumerate(args):
        if token.startswith("--"):
            flag = token.partition("=")[0]
            assert flag in parser._option_string_actions, f"{script} has no {flag}"
            action = parser._option_string_actions[flag]
            value = args[i + 1] if i + 1 < len(args) else None
            if action.choices and value is not None and not value.startswith("-"):
                assert value in action.choices, f"{script} {flag} {value}: not one of {list(action.choices)}"


def check_python(args: list[str], mention: bool = False) -> None:
    if args[0] == "-c":
        tree = ast.parse(args[1])  # the code compiles, and what it imports exists
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
        return
    script, script_args = args[0], args[1:]
    check_repo_paths(args)
    source = (ROOT / script).read_text(encoding="utf-8") if (ROOT / script).is_file() else ""
    # not a command (argparse, or a wrapper of dynamictrl.cli): e.g. `python tests/x.py --gate` reads sys.argv
    if "argparse" not in source and "from dynamictrl.cli." not in source and "def main(" not in source:
        assert source, f"{script} does not exist"
        for flag in (t for t in script_args if t.startswith("-")):
            assert f'"{flag}"' in source, f"{script} does not read {flag}"
        return
    if mention:
        check_mention(script, script_args)
        return
    namespace = parse_script(script, script_args).namespace
    if namespace is None:  # --help
        return
    if Path(script).name == "train.py":  # overrides must exist in the strict config schema
        from dynamictrl.training.config import load_config

        load_config(ROOT / namespace.config, namespace.overrides)


def check_accelerate(args: list[str]) -> None:
    from accelerate.commands.launch import launch_command_parser

    assert args[0] == "launch", f"accelerate {args[0]}: only 'accelerate launch' is documented"
    launch = launch_command_parser().parse_args(args[1:])
    if launch.config_file:
        assert (ROOT / launch.config_file).is_file(), f"{launch.config_file} does not exist"
    check_python([launch.training_script, *launch.training_script_args])


def check_torchrun(args: list[str]) -> None:
    from torch.distributed.run import get_args_parser

    launch = get_args_parser().parse_args(args)
    check_python([launch.training_script, *launch.training_script_args])


def check_bash(args: list[str], env: dict[str, str]) -> None:
    script = ROOT / args[0]
    assert script.is_file(), f"{args[0]} does not exist"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    for name in env:
        assert f"${{{name}:-" in text or f"${name}" in text, f"{args[0]} does not read {name}"


def check_make(args: list[str]) -> None:
    dry = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, f"make {shlex.join(args)}: {dry.stderr.strip()}"
    for line in dry.stdout.splitlines():  # the recipe's own repository commands
        tokens = shlex.split(line, comments=True)
        if len(tokens) > 1 and tokens[0].endswith("python") and tokens[1].startswith(("scripts/", "tools/")):
            check_python(tokens[1:])


def check_pytest(args: list[str]) -> None:
    text = (ROOT / "pyproject.toml").read_text()
    for i, token in enumerate(args):
        if token == "-m":
            assert f'"{args[i + 1]}:' in text, f"pytest marker {args[i + 1]} is not registered in pyproject.toml"
        elif not token.startswith("-") and (i == 0 or args[i - 1] != "-m"):
            assert (ROOT / token.split("::")[0]).exists(), f"{token} does not exist"


def check_external(program: str, args: list[str]) -> None:
    if program == "huggingface-cli":
        names = [a for a in args[2:] if not a.startswith("-") and "/" not in a and "~" not in a]
        code = "".join(p.read_text() for p in (ROOT / "dynamictrl").rglob("*.py"))
        for name in names:
            assert name in code, f"{name} is downloaded but no code in dynamictrl/ looks for it"
    elif program == "pip":
        for extra in re.findall(r"\[([\w,]+)\]", " ".join(args)):
            for name in extra.split(","):
                assert f"\n{name} = [" in (ROOT / "pyproject.toml").read_text(), f"no extra [{name}] in pyproject.toml"
    elif program == "export":
        code = "".join(p.read_text() for p in (ROOT / "dynamictrl").rglob("*.py"))
        for assignment in args:
            name = assignment.partition("=")[0]
            assert name in code, f"{name} is exported but nothing in dynamictrl/ reads it"
    elif program != "mkdir":
        pytest.fail(f"{program}: neither run nor parsed (add a check to tests/test_docs.py)")


def split_env(tokens: list[str]) -> tuple[dict[str, str], list[str]]:
    env = {}
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):
        name, _, value = tokens.pop(0).partition("=")
        env[name] = value
    return env, tokens


def check_command(tokens: list[str], mention: bool = False) -> None:
    env, tokens = split_env(list(tokens))
    program, args = tokens[0], tokens[1:]
    if program == "python":
        check_python(args, mention)
    elif program == "accelerate":
        check_accelerate(args)
    elif program == "torchrun":
        check_torchrun(args)
    elif program == "bash":
        check_bash(args, env)
    elif program == "make":
        check_make(args)
    elif program == "pytest":
        check_pytest(args)
    elif program in INSTALLED_COMMANDS:
        check_python([INSTALLED_COMMANDS[program], *args], mention)
    else:
        check_external(program, args)


# ------------------------------------------------------------------------------------------------ tests


def test_the_docs_have_commands_and_every_run_entry_matches_one():
    assert len(COMMANDS) > 30, [str(c) for c in COMMANDS]
    stale = [prefix for prefix in RUN if not any(c.text.startswith(prefix) for c in COMMANDS)]
    assert not stale, f"RUN entries that match no doc command (the doc changed?): {stale}"


PARSED = [c for c in COMMANDS if run_entry(c) is None]


@pytest.mark.parametrize("command", PARSED, ids=[f"{c.doc}:{c.line}" for c in PARSED])
def test_doc_command_parses(command: DocCommand):
    for tokens in expand(shlex.split(command.text)):
        check_command(tokens, command.mention)


def _linked_workdir(tmp: Path) -> Path:
    for name in ("configs", "dynamictrl", "scripts", "tools", "pyproject.toml"):
        (tmp / name).symlink_to(ROOT / name)
    return tmp


@pytest.mark.slow
def test_doc_commands_run_shrunk_on_the_cpu(tmp_path):
    work = _linked_workdir(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    venv_bin = Path(sys.executable).parent
    ran = []
    for command in COMMANDS:
        edits = run_entry(command)
        if edits is None:
            continue
        replacements, extra = edits
        text = command.text
        for old, new in replacements.items():
            assert old in text, f"{command}: the override {old!r} no longer applies"
            text = text.replace(old, new)
        tokens = shlex.split(text) + shlex.split(extra)
        check_command(tokens)  # what runs is also what parses
        program = {"python": sys.executable, "accelerate": str(venv_bin / "accelerate")}[tokens[0]]
        result = subprocess.run([program, *tokens[1:]], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        ran.append(command.text)
    assert len(ran) == len(RUN)
    assert (work / "runs/tiny_cpu/final/transformer/config.json").is_file()
    assert (work / "runs/tiny_cpu/animation.mp4").stat().st_size > 0
    assert (work / "outputs/eval/other-pose.json").is_file()


def test_expand_fills_placeholders_optional_groups_and_alternatives():
    assert expand(shlex.split("python tools/x.py --split train|test [--n N] [key=value ...] --c CFG")) == [
        ["python", "tools/x.py", "--split", "train", "--n", "2", "--c", "CFG"],
        ["python", "tools/x.py", "--split", "test", "--n", "2", "--c", "CFG"],
    ]
    assert expand(["torchrun", "scripts/train.py", "--config", "..."])[0][-1] == "configs/train/tiny_cpu.yaml"
    assert expand(["python", "scripts/infer.py", "--pose", "X", "..."]) == [
        ["python", "scripts/infer.py", "--pose", "X"]
    ]


def test_a_wrong_flag_or_a_missing_file_in_a_doc_fails_the_parse_check():
    with pytest.raises(pytest.fail.Exception, match="unrecognized arguments: --no-such-flag"):
        check_command(["python", "scripts/evaluate.py", "--gt", "a", "--pred", "b", "--out", "c", "--no-such-flag"])
    with pytest.raises(AssertionError, match="scripts/evaluate.py has no --no-such-flag"):
        check_command(["python", "scripts/evaluate.py", "--no-such-flag"], mention=True)
    with pytest.raises(AssertionError, match="configs/train/nope.yaml does not exist"):
        check_command(["python", "tools/prepare_dataset.py", "--config", "configs/train/nope.yaml", "--out", "x"])
    with pytest.raises(Exception, match="max_stepz"):
        check_command(["python", "scripts/train.py", "--config", "configs/train/tiny_cpu.yaml", "train.max_stepz=1"])
    with pytest.raises(pytest.fail.Exception, match="neither run nor parsed"):
        check_command(["conda", "install", "dynamictrl"])


def test_collector_finds_fenced_and_inline_commands():
    texts = [c.text for c in COMMANDS]
    assert "make demo" in texts
    assert any(t.startswith("bash tools/run_tiny_ablations.sh") for t in texts)
    assert any(t.startswith("python tools/prepare_dataset.py --config CFG") for t in texts)  # `tools/x.py --flag`
    assert not any(token.startswith("#") for t in texts for token in shlex.split(t))  # comments removed


def test_doc_links_point_to_files_in_the_repository():
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "#", "mailto:")):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.exists() or not path.is_relative_to(ROOT):  # e.g. ../shared/ is not in users' clones
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken


# Paths the docs name that belong to another repository (the official DynamiCtrl release), not this one.
OTHER_REPOSITORIES = {"scripts/dynamictrl_inference.py"}


def test_repository_paths_named_in_the_docs_exist():
    missing = []
    for doc in DOCS:
        for span in re.findall(r"`([^`\s]+)`", doc.read_text(encoding="utf-8")):
            path = span.rstrip(".,:;").split("::")[0]
            if path.startswith(REPO_DIRS) and path not in OTHER_REPOSITORIES:
                if not (ROOT / path).exists() and not any(ROOT.glob(path)):
                    missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert not missing
