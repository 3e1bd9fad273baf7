"""A non-editable ``pip install`` of a clone into a fresh venv runs the demo from any folder (issue 14, item 3).

The fresh venv gets the project venv's third-party packages (torch, diffusers, ...) through a ``.pth`` line, so
nothing is downloaded; ``dynamictrl`` itself is built from a copy of the clone and installed as a wheel. A ``.pth``
line only adds a folder to ``sys.path`` (the ``.pth`` files inside it, such as the project venv's editable finder,
are not run), and the test checks that the installed copy is the one that runs.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from dynamictrl.assets import DEMO_DIR
from dynamictrl.data.io import read_video

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)


def clone_files() -> list[str]:
    """The files a clone has: tracked ones plus new ones git does not ignore."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: cannot list the files of a clone")
    listed = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT)
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    return [name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``bin/`` of a fresh venv with dynamictrl installed (not editable) from a copy of this clone."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "clone"
    for name in clone_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    venv = tmp / "venv"
    created = run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    if created.returncode != 0:
        pytest.skip(f"python -m venv does not work here: {created.stderr.strip()[-300:]}")
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # the project venv's packages (pip, setuptools, torch, diffusers, ...) after the fresh venv's own
    (Path(purelib) / "project_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    pip = run([str(python), "-m", "pip", "--version"])
    if pip.returncode != 0:
        pytest.skip(f"pip does not run in the fresh venv: {pip.stderr.strip()[-300:]}")
    # --ignore-installed: the project venv's editable dynamictrl is visible to pip but must be neither used nor touched
    install = [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
    result = run([*install, "--ignore-installed", "--no-cache-dir", str(source)], cwd=tmp)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return venv / "bin"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


@pytest.mark.slow
def test_installed_package_is_the_wheel_with_its_assets_not_the_clone(installed, tmp_path):
    code = (
        "import dynamictrl, dynamictrl.assets as a; print(dynamictrl.__file__); "
        "print((a.EMBEDDED_MODEL_DIR / 'model_index.json').is_file(), (a.DEMO_DIR / 'pose.mp4').is_file())"
    )
    result = run([str(installed / "python"), "-c", code], cwd=tmp_path, env=clean_env())
    assert result.returncode == 0, result.stderr
    location, assets = result.stdout.splitlines()
    assert Path(location).is_relative_to(installed.parent) and not Path(location).is_relative_to(ROOT)
    assert assets == "True True"


@pytest.mark.slow
def test_installed_command_animates_the_demo_from_an_empty_folder(installed, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    command = installed / "dynamictrl-infer"
    assert command.is_file()
    shown = run([str(command), "--help"], cwd=work, env=clean_env())
    assert shown.returncode == 0 and shown.stdout.startswith("usage: dynamictrl-infer "), shown.stderr
    out = tmp_path / "x.mp4"
    # --steps 2 instead of the demo's 10: the same inputs and model, a faster run
    result = run([str(command), "--demo", "--out", str(out), "--steps", "2"], cwd=work, env=clean_env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "RANDOM" not in result.stdout  # the embedded model was found in the installed package
    frames, _ = read_video(out)
    assert len(frames) == len(read_video(DEMO_DIR / "pose.mp4")[0])
    assert out.with_suffix(".png").is_file()  # --demo also writes the reference | pose | result sheet
    assert list(work.iterdir()) == []  # nothing written where the command ran
