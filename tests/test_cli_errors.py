"""The user-error contract of every entry point: one line ``error: ...`` naming the flag, status 2, no traceback,
and nothing loaded first.

The table runs each script's ``main(argv)`` in this process with two traps: building any ``torch.nn.Module`` (every
model, loaded or random, is one) and opening a network connection both fail the test, so a check that moved after
a model load, or a path that fell through to the Hub, is caught. A few cases run as real subprocesses with torch,
diffusers and transformers made unimportable: they prove the exit path and that the check comes before the imports.
"""

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dynamictrl.data.io import write_image

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED = ROOT / "dynamictrl" / "assets" / "models" / "dynamictrl-tiny"
DEMO = ROOT / "dynamictrl" / "assets" / "demo"

# Runs a script with torch / diffusers / transformers unimportable: argv = [script, args...].
BLOCK_HEAVY_IMPORTS = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "diffusers", "transformers"):
            raise ImportError("imported before the inputs were checked: " + name)
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "notes.txt").write_text("not an image\n")
    (root / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    write_image(root / "small_mask.png", np.zeros((32, 32), np.uint8))  # the reference is 64x64
    half = root / "half_model"  # model_index.json without its component folders
    half.mkdir()
    shutil.copy(EMBEDDED / "model_index.json", half)
    (root / "gt" / "videos").mkdir(parents=True)
    shutil.copy(DEMO / "pose.mp4", root / "gt" / "videos" / "a.mp4")
    (root / "empty").mkdir()
    for folder in ("videos", "poses"):  # the layout animate_dataset checks (its clips are never read here)
        (root / "data" / folder).mkdir(parents=True)
    (root / "data" / "prompts.txt").write_text("a.mp4#####a caption\n")
    shutil.copy(DEMO / "pose.mp4", root / "data" / "videos" / "a.mp4")  # with no poses/a.mp4
    (root / "prompts.txt").write_text("0\ta red room\n")
    return root


def expand(argv, files):
    values = {"files": files, "embedded": EMBEDDED, "demo": DEMO, "root": ROOT}
    return [str(a).format(**values) for a in argv]


INFER = ["--ref", "{demo}/reference.png", "--pose", "{demo}/pose.mp4", "--prompt", "x", "--out", "{files}/o.mp4"]
LONG = ["--ref", "{demo}/reference.png", "--pose", "{demo}/pose.mp4", "--prompts-file", "{files}/prompts.txt"]
TRAIN = ["--config", "{root}/configs/train/tiny_cpu.yaml"]

# (id, entry point, argv, what the one line must name)
CASES = [
    ("infer-missing-ref", "scripts/infer.py", [*INFER, "--ref", "{files}/missing.png"], "--ref"),
    ("infer-ref-not-an-image", "scripts/infer.py", [*INFER, "--ref", "{files}/notes.txt"], "--ref"),
    ("infer-corrupt-pose", "scripts/infer.py", [*INFER, "--pose", "{files}/corrupt.mp4"], "--pose"),
    ("infer-missing-pose", "scripts/infer.py", [*INFER, "--pose", "{files}/missing.mp4"], "--pose"),
    ("infer-mask-wrong-size", "scripts/infer.py", [*INFER, "--mask", "{files}/small_mask.png"], "--mask"),
    ("infer-missing-model", "scripts/infer.py", [*INFER, "--model", "{files}/missing"], "--model"),
    ("infer-model-missing-parts", "scripts/infer.py", [*INFER, "--model", "{files}/half_model"], "--model"),
    ("infer-missing-transformer", "scripts/infer.py",
     [*INFER, "--model", "{embedded}", "--transformer", "/nonexistent/transformer"], "--transformer"),
    ("infer-transformer-without-weights", "scripts/infer.py",
     [*INFER, "--model", "{embedded}", "--transformer", "{files}/empty"], "--transformer"),
    ("infer-bad-height", "scripts/infer.py", [*INFER, "--height", "30"], "--height"),
    ("infer-bad-clip-frames", "scripts/infer.py", [*INFER, "--frames", "10"], "--clip-frames"),
    ("infer-bad-dtype", "scripts/infer.py", [*INFER, "--dtype", "float8"], "--dtype"),
    ("infer-unknown-flag", "scripts/infer.py", [*INFER, "--bogus"], "--bogus"),
    ("infer-zero-steps", "scripts/infer.py", [*INFER, "--steps", "0"], "--steps"),
    ("infer-missing-pose-models", "scripts/infer.py", [*INFER, "--pose-models", "{files}/missing"], "--pose-models"),
    ("long-missing-prompts-file", "scripts/sample_long.py", [*LONG, "--prompts-file", "{files}/x.tsv"],
     "--prompts-file"),
    ("long-prompt-and-prompts-file", "scripts/sample_long.py", [*LONG, "--prompt", "x"], "--prompts-file"),
    ("long-overlap-not-below-clip", "scripts/sample_long.py", [*LONG, "--clip-frames", "9", "--overlap", "9"],
     "--overlap"),
    ("train-missing-config", "scripts/train.py", ["--config", "{files}/missing.yaml"], "--config"),
    ("train-config-not-yaml", "scripts/train.py", ["--config", "{files}/notes.txt"], "--config"),
    ("train-unknown-key", "scripts/train.py", [*TRAIN, "train.max_stepz=3"], "train.max_stepz"),
    ("train-missing-data", "scripts/train.py", [*TRAIN, "data.root={files}/missing"], "data.root"),
    ("train-clip-without-pose", "scripts/train.py", [*TRAIN, "data.root={files}/data"], "data.root"),
    ("train-missing-base-model", "scripts/train.py", [*TRAIN, "model.source=base", "model.base_path={files}/empty"],
     "model.base_path"),
    ("evaluate-gt-is-videos-folder", "scripts/evaluate.py",
     ["--gt", "{files}/gt/videos", "--pred", "{files}/gt", "--out", "{files}/r.json"], "--gt {files}/gt"),
    ("evaluate-missing-pred", "scripts/evaluate.py",
     ["--gt", "{files}/gt", "--pred", "{files}/missing", "--out", "{files}/r.json"], "--pred"),
    ("evaluate-pred-lacks-a-clip", "scripts/evaluate.py",
     ["--gt", "{files}/gt", "--pred", "{files}/empty", "--out", "{files}/r.json"], "--pred"),
    ("evaluate-nothing-to-do", "scripts/evaluate.py", ["--gt", "{files}/gt", "--out", "{files}/r.json"], "--baseline"),
    ("train-vae-bad-frames", "scripts/train_vae.py", ["--out", "{files}/vae", "--frames", "10"], "--frames"),
    ("train-vae-missing-evaluate", "scripts/train_vae.py", ["--out", "{files}/v", "--evaluate", "{files}/missing"],
     "--evaluate"),
    ("benchmark-bad-frames", "scripts/benchmark.py", ["--frames", "48"], "--frames 48"),
    ("benchmark-unpaired-sizes", "scripts/benchmark.py", ["--height", "32,64", "--width", "32"], "--height"),
    ("benchmark-model-missing-parts", "scripts/benchmark.py", ["--model", "{files}/empty"], "--model"),
    ("app-missing-model", "scripts/app.py", ["--model", "{files}/missing"], "--model"),
    ("app-missing-sam-dir", "scripts/app.py", ["--sam-dir", "{files}/missing"], "--sam-dir"),
    ("summarize-no-match", "scripts/summarize_results.py", ["--run", "x={files}/none*.json"], "--run"),
    ("extract-pose-corrupt-video", "tools/extract_pose.py", ["{files}/corrupt.mp4", "--out", "{files}/p.mp4"],
     "video"),
    ("extract-pose-no-models", "tools/extract_pose.py",
     ["{demo}/pose.mp4", "--out", "{files}/p.mp4", "--models-dir", "{files}/empty"], "--models-dir"),
    ("make-masks-missing-keypoints", "tools/make_masks.py",
     ["{demo}/pose.mp4", "--keypoints", "{files}/k.npz", "--out", "{files}/m.mp4"], "--keypoints"),
    ("caption-missing-input", "tools/caption.py", ["{files}/none.mp4", "--out", "{files}/p.txt", "--template"],
     "none.mp4"),
    ("make-synthetic-zero-clips", "tools/make_synthetic.py", ["--out", "{files}/syn", "--num", "0"], "--num"),
    ("make-demo-bad-frames", "tools/make_demo_assets.py", ["--out", "{files}/demo", "--frames", "10"], "--frames"),
    ("animate-dataset-missing-data", "tools/animate_dataset.py",
     ["--data", "{files}/missing", "--model", "{embedded}", "--out", "{files}/pred"], "--data"),
    ("animate-dataset-model-missing-parts", "tools/animate_dataset.py",
     ["--data", "{files}/data", "--model", "{files}/half_model", "--out", "{files}/pred"], "--model"),
    ("prepare-dataset-missing-data", "tools/prepare_dataset.py",
     [*TRAIN, "--out", "{files}/lat", "data.root={files}/missing"], "data.root"),
    ("build-tiny-missing-vae", "tools/build_tiny_model.py", ["base", "--vae", "{files}/missing", "--out", "{files}/b"],
     "--vae"),
    ("build-tiny-missing-base", "tools/build_tiny_model.py",
     ["export", "--base", "{files}/missing", "--transformer", "{files}/empty", "--out", "{files}/b"], "--base"),
]  # fmt: skip


def load_main(entry_point: str):
    path = ROOT / entry_point
    spec = importlib.util.spec_from_file_location(f"cli_errors_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses with string annotations look their module up
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture
def nothing_loaded(monkeypatch):
    """No model may be built and no connection opened while arguments are being checked."""
    import torch

    import dynamictrl.data.dataset  # noqa: F401  (importing may build small modules, e.g. activations: allowed)
    import dynamictrl.pipelines.pipeline_dynamictrl  # noqa: F401

    def no_model(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__} was built before the inputs were checked")

    def no_network(self, address):
        raise AssertionError(f"a connection to {address} was attempted")

    monkeypatch.setattr(torch.nn.Module, "__init__", no_model)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.delenv("DYNAMICTRL_DEBUG", raising=False)
    monkeypatch.delenv("DYNAMICTRL_DWPOSE_DIR", raising=False)


@pytest.mark.parametrize("case, entry_point, argv, names", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_status_2_before_any_model(
    case, entry_point, argv, names, files, nothing_loaded, capsys
):
    main = load_main(entry_point)
    try:
        code = main(expand(argv, files))
    except SystemExit as exit_:  # argparse's own errors (unknown flag, bad choice) exit directly
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expand([names], files)[0] in lines[0]
    assert "Traceback" not in err


def test_table_covers_every_entry_point():
    covered = {entry for _, entry, _, _ in CASES}
    expected = {f"scripts/{p.name}" for p in (ROOT / "scripts").glob("*.py")}
    expected |= {f"tools/{p.name}" for p in (ROOT / "tools").glob("*.py")}
    assert expected <= covered, sorted(expected - covered)
    assert len(CASES) >= 15


def run_without_heavy_imports(entry_point, *argv, env=None):
    cmd = [sys.executable, "-c", BLOCK_HEAVY_IMPORTS, str(ROOT / entry_point), *map(str, argv)]
    full_env = {k: v for k, v in os.environ.items() if k != "DYNAMICTRL_DEBUG"} | (env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, env=full_env)


@pytest.mark.parametrize(
    "entry_point, argv, names",
    [
        ("scripts/infer.py", [*INFER, "--ref", "{files}/notes.txt"], "--ref"),
        ("scripts/infer.py", [*INFER, "--pose", "{files}/corrupt.mp4"], "--pose"),
        ("scripts/evaluate.py", ["--gt", "{files}/gt/videos", "--pred", "{files}/gt", "--out", "{files}/r.json"],
         "--gt"),
        ("scripts/train.py", ["--config", "{files}/missing.yaml"], "--config"),
    ],
    ids=["infer-ref", "infer-corrupt-pose", "evaluate-gt", "train-config"],
)  # fmt: skip
def test_real_exit_path_checks_before_importing_torch(entry_point, argv, names, files):
    proc = run_without_heavy_imports(entry_point, *expand(argv, files))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert names in proc.stderr


def test_debug_flag_and_env_variable_show_the_traceback(files):
    argv = expand([*INFER, "--ref", "{files}/notes.txt"], files)
    for extra, env in ((["--debug"], None), ([], {"DYNAMICTRL_DEBUG": "1"})):
        proc = run_without_heavy_imports("scripts/infer.py", *argv, *extra, env=env)
        assert proc.returncode == 1
        assert "Traceback" in proc.stderr and "UserError" in proc.stderr and "--ref" in proc.stderr


def test_internal_errors_keep_their_traceback(monkeypatch, capsys):
    """Only user errors are shortened: a bug (here a ValueError from inside the run) still raises."""
    from dynamictrl.cli import sample_long

    def broken(args):
        raise ValueError("a bug")

    monkeypatch.setattr(sample_long, "animate", broken)
    main = load_main("scripts/sample_long.py")  # the wrapper's main is sample_long.main
    with pytest.raises(ValueError, match="a bug"):
        main(expand(LONG, Path("/unused")))


def test_wrong_local_paths_in_python_never_reach_the_network(monkeypatch, tmp_path):
    """The README's ``from_pretrained("/models/...")`` with a wrong path names it; a Hub-style name that is not on
    disk fails from the local cache. No connection is attempted (HF_HUB_OFFLINE is not what stops it)."""
    from dynamictrl.errors import UserError
    from dynamictrl.models import DynamiCtrlTransformer3DModel
    from dynamictrl.pipelines import DynamiCtrlPipeline

    attempts = []

    def no_network(self, address):
        attempts.append(address)
        raise AssertionError(f"a connection to {address} was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DIFFUSERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UserError, match="transformer /models/DynamiCtrl-5B/transformer: no such folder"):
        DynamiCtrlTransformer3DModel.from_pretrained("/models/DynamiCtrl-5B/transformer")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="model_index.json"):
        DynamiCtrlPipeline.from_pretrained(tmp_path)
    with pytest.raises(OSError):
        DynamiCtrlTransformer3DModel.from_pretrained("nobody/no-such-model")
    assert attempts == []
