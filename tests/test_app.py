"""scripts/app.py through its API, as scripts call it with gradio_client: a real server on a free local port with the
embedded tiny model (CPU), generating from the demo files."""

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio", reason="the app needs the [app] extra: pip install -e '.[app]'")
from app_server import free_port, load_app  # noqa: E402  (tests/: the app tests' shared helpers)
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from dynamictrl.data.io import read_video, write_video  # noqa: E402
from dynamictrl.errors import UserError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "dynamictrl" / "assets" / "demo"
MAX_POSE_FRAMES = 32  # the demo's long pose video has 29 frames
TABLE_HEADERS = ["start frame", "prompt"]


@pytest.fixture(scope="module")
def app():
    return load_app("app_under_test")


OUTSIDE: list = []  # addresses off this machine that anything in this process tried to connect to


def local_only(connect):
    def guarded(sock, address, *args):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not (host.startswith("127.") or host in ("::1", "localhost")):
            OUTSIDE.append(address)
            raise OSError(f"test_app: no network ({address})")
        return connect(sock, address, *args)

    return guarded


@pytest.fixture(scope="module")
def server(app, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", local_only(socket.socket.connect))
        patch.setattr(socket.socket, "connect_ex", local_only(socket.socket.connect_ex))
        args = app.build_parser().parse_args(["--port", str(free_port()), "--max-pose-frames", str(MAX_POSE_FRAMES)])
        page = app.build_app(args)
        _, url, _ = app.launch(page, args, prevent_thread_lock=True, quiet=True)
        client = Client(url, download_files=str(tmp_path_factory.mktemp("downloads")), verbose=False)
        yield client, page
    page.close()
    root = page.animator.root
    assert root.is_dir() and len(list(root.iterdir())) <= app.KEEP_RESULTS
    page.animator.close()
    assert not root.exists(), "the results folder outlived the app"


def generate(client, **changes):
    """The README's call: files, prompt, steps by name; every other setting keeps the page's default."""
    values = dict(
        reference=handle_file(DEMO / "reference.png"),
        pose=handle_file(DEMO / "pose.mp4"),
        mask=None,
        prompt="a person in a pink shirt, yellow wall",
        steps=2,
        seed=7,
    )
    values.update(changes)
    return client.predict(**values, api_name="/generate")


def video_path(value) -> str:
    return value["video"] if isinstance(value, dict) else value


def test_generate_endpoint_gives_an_mp4_with_every_pose_frame_at_the_model_size(server):
    client, page = server
    video, sheet, pose_used, command = generate(client)
    frames, _ = read_video(video_path(video))
    poses, _ = read_video(video_path(pose_used))
    demo_poses, _ = read_video(DEMO / "pose.mp4")
    geometry = page.animator.loaded.pipe.transformer.config
    size = (geometry.sample_height * 4, geometry.sample_width * 4)  # latent pixels x the tiny VAE's factor 4
    assert Path(video_path(video)).suffix == ".mp4"
    assert frames.shape == (len(demo_poses), *size, 3)  # 17 frames: two clips of 9 sharing one
    assert poses.shape == frames.shape
    assert Path(sheet).suffix == ".png" and Path(sheet).stat().st_size > 0
    assert command.startswith("dynamictrl-infer --ref ")


@pytest.mark.slow  # a second process: python + torch start-up, the model, a generation
def test_shown_command_reproduces_the_video_of_a_prompt_table(server, tmp_path):
    """The table of prompts goes through scripts/sample_long.py; its command, run in a shell, gives the same frames."""
    client, _ = server
    table = {"headers": TABLE_HEADERS, "data": [[0, "a yellow wall"], [8, "a blue sky"]]}
    video, _, _, command = generate(
        client, pose=handle_file(DEMO / "pose_long.mp4"), prompts=table, clip_frames=9, max_frames=17
    )
    assert "printf '%s\\t%s\\n' 0 'a yellow wall' 8 'a blue sky' > prompts.txt" in command
    assert "dynamictrl-sample-long " in command and "--prompts-file prompts.txt" in command
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "clip 1: frames 8-16, prompt 'a blue sky'" in proc.stderr
    expected, _ = read_video(video_path(video))
    reproduced, _ = read_video(tmp_path / "outputs" / "app.mp4")
    assert reproduced.shape == expected.shape == (17, 64, 64, 3)
    np.testing.assert_array_equal(reproduced, expected)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "notes.png").write_text("not an image")
    (root / "pose.txt").write_text("not a pose")
    (root / "corrupt.mp4").write_bytes(b"\x00" * 512)
    noise = np.random.default_rng(0).integers(0, 256, (9, 64, 64, 3), dtype=np.uint8)  # no pose drawing: a raw video
    write_video(root / "motion.mp4", noise, fps=8)
    long_poses = np.repeat(read_video(DEMO / "pose_long.mp4")[0], 2, axis=0)  # 58 frames
    write_video(root / "long_pose.mp4", long_poses, fps=8)
    return root


@pytest.mark.parametrize(
    "field, upload, message",
    [
        ("reference", "notes.png", "Reference image: notes.png: cannot decode the image"),
        ("pose", "pose.txt", "Pose: a .txt file (one of .mp4,"),
        ("pose", "corrupt.mp4", "Pose: "),
        ("pose", "long_pose.mp4", f"Pose: 58 frames, too long for this app (at most {MAX_POSE_FRAMES}"),
        ("pose", "motion.mp4", "DWPose models not configured"),
    ],
    ids=["reference-not-an-image", "pose-not-a-pose-file", "pose-corrupt-video", "pose-too-long", "raw-video"],
)
def test_bad_upload_is_refused_with_one_message_naming_the_field(server, bad_files, field, upload, message):
    client, _ = server
    with pytest.raises(AppError) as refused:
        generate(client, **{field: handle_file(bad_files / upload)})
    text = str(refused.value)
    assert message in text and "Traceback" not in text and "\n" not in text.strip()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"steps": "many"}, "settings: invalid literal for int() with base 10: 'many'"),
        ({"pose_style": "stick"}, "pose style 'stick' (dwpose or dynamictrl)"),
        ({"clip_frames": 10}, "--clip-frames 10 (k*4+1 frames"),
    ],
    ids=["steps-not-a-number", "unknown-pose-style", "clip-length-not-4k+1"],
)
def test_bad_setting_is_refused_with_one_message(server, changes, message):
    client, _ = server
    with pytest.raises(AppError) as refused:
        generate(client, **changes)
    assert message in str(refused.value) and "Traceback" not in str(refused.value)


@pytest.mark.slow  # a second process: python + torch start-up, the model, a generation
def test_mask_the_person_and_a_raw_video_with_pose_models_reproduce_from_the_command(app, bad_files, tmp_path):
    """With DWPose models (tiny stand-ins), 'mask the person' runs tools/make_masks.py and a raw motion video is
    extracted; the shown two-step command gives the same video."""
    pytest.importorskip("onnxruntime")
    from test_pose_dwpose import make_tiny_dwpose_models

    models = tmp_path / "dwpose"
    models.mkdir()
    make_tiny_dwpose_models(models, {6: (200, 300, 0.8), 5: (380, 300, 0.7), 12: (250, 600, 0.9), 0: (288, 100, 1)})
    animator = app.Animator(app.build_parser().parse_args(["--pose-models", str(models)]))
    try:
        request = app.Request(reference=str(DEMO / "reference.png"), pose=str(bad_files / "motion.mp4"), steps=2)
        result = animator.run(request, mask_the_person=True)
        expected, _ = read_video(result["video"])
    finally:
        animator.close()
    command = result["command"]
    assert command.startswith(f"dynamictrl-make-masks {DEMO / 'reference.png'} --out reference_mask.png ")
    assert "--mask reference_mask.png" in command and f"--pose-models {models}" in command
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "reference_mask.png").is_file()
    np.testing.assert_array_equal(read_video(tmp_path / "outputs" / "app.mp4")[0], expected)


def test_prompt_table_rows_are_checked_like_a_prompts_file(app):
    rows = {"headers": TABLE_HEADERS, "data": [["0", " a  wall "], [None, ""], [8.0, "sky"]]}
    assert app.prompt_rows(rows) == [(0, "a wall"), (8, "sky")]
    with pytest.raises(UserError, match="no prompt at frame 4"):
        app.prompt_rows([[4, ""]])
    with pytest.raises(UserError, match="start frame 'soon'"):
        app.prompt_rows([["soon", "a wall"]])


def test_shown_command_names_the_model_flags_the_app_runs_with(app, tmp_path):
    args = app.build_parser().parse_args(
        ["--model", "m", "--transformer", "t", "--dtype", "bf16", "--offload", "model", "--vae-tiling"]
    )
    request = app.Request(reference="ref.png", pose="pose.mp4", prompt="-a dancer", steps=30, retarget="off")
    out = tmp_path / "result.mp4"
    script, argv = app.generation_command(request, args, out, tmp_path)
    command = app.reproduce_command(script, argv, {str(out): "outputs/app.mp4"}, [])
    parsed = app.script_parser(script).parse_args(shlex.split(command)[1:])
    assert script == "infer.py" and str(parsed.out) == "outputs/app.mp4"
    assert (str(parsed.model), str(parsed.transformer), parsed.dtype, parsed.offload) == ("m", "t", "bf16", "model")
    assert parsed.vae_tiling and parsed.steps == 30 and parsed.retarget is False and parsed.prompt == "-a dancer"


def test_mask_the_person_without_pose_models_is_a_message(server):
    client, page = server
    if page.animator.pose_models is not None:
        pytest.skip("DWPose models are configured here ($DYNAMICTRL_DWPOSE_DIR)")
    with pytest.raises(AppError, match="'mask the person' needs the DWPose models .start the app with --pose-models"):
        generate(client, mask_the_person=True)


def test_app_connects_to_nothing_outside_this_machine(server):
    """Start-up, page, uploads and a generation (the last test here, so every test above counts too)."""
    client, _ = server
    generate(client, max_frames=5)
    assert OUTSIDE == []
