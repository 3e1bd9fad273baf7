"""Official release folders load as they are, in any of the three namings of their components.

(a) the official classes (``["dynamictrl", "DynamiCtrlTransformerModel"]``, ``["dynamictrl", "AutoencoderKLCogVideoX"]``,
``_class_name: DynamiCtrlAnimationPipeline``), (b) diffusers' CogVideoX names with the official transformer inside
(the golden fixtures as they are), (c) ours. Each folder is built from the golden fixtures (components copied,
``model_index.json`` rewritten), loaded through ``DynamiCtrlPipeline.from_pretrained`` and ``scripts/infer.py
--model``, and must reproduce the official pipeline. A folder whose transformer has no pose weights (a plain
CogVideoX image-to-video transformer) is refused in one line.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import CogVideoXDPMScheduler
from safetensors.torch import load_file, save_file
from test_infer_cli import main_of
from test_official_golden import FIXTURES, Golden, assert_close, load_as_user

import dynamictrl
from dynamictrl.data.io import read_image, write_image, write_video
from dynamictrl.errors import UserError
from dynamictrl.models import DynamiCtrlTransformer3DModel
from dynamictrl.pipelines import DynamiCtrlPipeline

REPO = Path(__file__).resolve().parents[1]

WEIGHTS = "diffusion_pytorch_model.safetensors"
NAMINGS = {
    "official": {
        "_class_name": "DynamiCtrlAnimationPipeline",
        "transformer": ["dynamictrl", "DynamiCtrlTransformerModel"],
        "vae": ["dynamictrl", "AutoencoderKLCogVideoX"],
    },
    "cogvideox": {},  # the fixtures as they are
    "ours": {
        "_class_name": "DynamiCtrlPipeline",
        "transformer": ["dynamictrl.pipelines.pipeline_dynamictrl", "DynamiCtrlTransformer3DModel"],
    },
}


def make_folder(tmp_path: Path, variant: str, naming: str) -> Path:
    """A copy of a golden fixture folder whose model_index.json names its components as ``naming`` does."""
    folder = tmp_path / f"{variant}-{naming}"
    shutil.copytree(FIXTURES / variant, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index.update(NAMINGS[naming])
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    if naming == "ours":  # as save_pretrained writes it
        config = json.loads((folder / "transformer" / "config.json").read_text())
        config.update(_class_name="DynamiCtrlTransformer3DModel", pose_control="padaln", use_text=True)
        (folder / "transformer" / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def make_plain_cogvideox_folder(tmp_path: Path, variant: str = "v10") -> Path:
    """A CogVideoX image-to-video base folder: the fixture with its transformer stripped of the pose weights."""
    folder = make_folder(tmp_path, variant, "cogvideox")
    transformer = folder / "transformer"
    weights = load_file(transformer / WEIGHTS)
    save_file({k: v for k, v in weights.items() if ".control_norm1." not in k}, transformer / WEIGHTS)
    config = json.loads((transformer / "config.json").read_text())
    config["_class_name"] = "CogVideoXTransformer3DModel"
    (transformer / "config.json").write_text(json.dumps(config, indent=2))
    return folder


# ---------------------------------------------------------------- names


def test_official_class_names_resolve_in_our_package():
    from diffusers import AutoencoderKLCogVideoX

    assert dynamictrl.DynamiCtrlTransformerModel is DynamiCtrlTransformer3DModel
    assert dynamictrl.AutoencoderKLCogVideoX is AutoencoderKLCogVideoX
    assert dynamictrl.DynamiCtrlAnimationPipeline is DynamiCtrlPipeline
    with pytest.raises(AttributeError):
        dynamictrl.NoSuchClass  # noqa: B018


def test_import_dynamictrl_does_not_import_torch():
    """The aliases are resolved on first use: the package itself stays light (fast --help)."""
    code = "import sys, dynamictrl; assert 'torch' not in sys.modules and 'diffusers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ---------------------------------------------------------------- the three namings reproduce the official latents


@pytest.mark.parametrize("variant", ("v10", "v15"))
@pytest.mark.parametrize("naming", NAMINGS)
def test_from_pretrained_loads_each_naming_and_reproduces_official_latents(tmp_path, naming, variant):
    golden = Golden(variant)
    pipe = load_as_user(make_folder(tmp_path, variant, naming))
    assert type(pipe.transformer) is DynamiCtrlTransformer3DModel
    assert pipe.transformer.config.pose_control == "padaln"
    assert_close(pipe(**golden.kwargs()).frames, golden.official["latents"], f"{naming} latents", golden.tolerance)


def result_frames_of_contact_sheet(path: Path, height: int, width: int) -> np.ndarray:
    """The result column of infer.py's --save-frames sheet (rows: reference | pose[t] | result[t])."""
    sheet = read_image(path)
    return sheet.reshape(-1, height, 3 * width, 3)[:, :, 2 * width :]


@pytest.mark.parametrize(
    ("script", "variant", "naming"),
    [
        ("infer.py", "v10", "official"),
        ("infer.py", "v10", "cogvideox"),
        ("infer.py", "v10", "ours"),
        ("infer.py", "v15", "official"),
        ("sample_long.py", "v10", "official"),
    ],
)
def test_script_model_folder_reproduces_official_frames(tmp_path, script, variant, naming):
    """``infer.py`` / ``sample_long.py --model FOLDER`` (seed only, no initial latents): the frames written are the
    official seed-only latents decoded, to the uint8 step (checked on the lossless PNG sheet; the MP4 is H.264)."""
    folder = make_folder(tmp_path, variant, naming)
    assert_script_reproduces_official_frames(tmp_path, script, Golden(variant), ["--model", str(folder)])


def test_infer_plain_base_with_release_folder_as_transformer_reproduces_official_frames(tmp_path):
    """``--model BASE --transformer RELEASE``: the release folder stands for its transformer/."""
    base = make_plain_cogvideox_folder(tmp_path)
    model_args = ["--model", str(base), "--transformer", str(FIXTURES / "v10")]
    assert_script_reproduces_official_frames(tmp_path, "infer.py", Golden("v10"), model_args)


def assert_script_reproduces_official_frames(tmp_path, script: str, golden: Golden, model_args: list[str]) -> None:
    call = golden.call
    write_image(tmp_path / "ref.png", golden.inputs["image"].numpy())
    write_video(tmp_path / "pose.mp4", golden.inputs["pose"].numpy(), lossless=True)
    out = tmp_path / "out.mp4"
    argv = [*model_args, "--ref", str(tmp_path / "ref.png"), "--pose", str(tmp_path / "pose.mp4")]
    argv += ["--pose-kind", "rendered", "--prompt", call["prompt"], "--steps", str(call["steps"])]
    argv += ["--guidance", str(call["guidance_scale"]), "--seed", str(call["seed"])]
    argv += ["--clip-frames", str(call["num_frames"]), "--height", str(call["height"]), "--width", str(call["width"])]
    argv += ["--out", str(out), "--save-frames"]
    assert main_of(script)(argv) == 0
    assert out.is_file()

    frames = result_frames_of_contact_sheet(out.with_suffix(".png"), call["height"], call["width"])
    pipe = DynamiCtrlPipeline.from_pretrained(golden.folder)
    with torch.no_grad():
        video = pipe.decode_latents(golden.official["latents_seed_only"])[0, :, : call["num_frames"]]
    expected = pipe.video_processor.postprocess_video(video[None], output_type="np")[0]  # (F, H, W, 3) in [0, 1]
    count = len(expected)
    picks = np.unique(np.linspace(0, count - 1, min(6, count)).round().astype(int))  # the sheet's rows
    expected = (expected[picks] * 255).round()
    diff = np.abs(frames.astype(np.float32) - expected).max()
    assert diff <= 1, f"{script} frames differ from the official seed-only result by {diff} uint8 steps"


# ---------------------------------------------------------------- strict loading and the one-line refusal


def assert_plain_cogvideox_refusal(message: str) -> None:
    assert "\n" not in message
    assert "plain CogVideoX" in message and "control_norm1" in message
    assert "--transformer" in message and 'pose_control="none"' in message


def test_plain_cogvideox_folder_is_refused_in_one_line_before_any_component_loads(tmp_path, monkeypatch):
    import transformers

    folder = make_plain_cogvideox_folder(tmp_path)

    def no_loading(*args, **kwargs):
        raise AssertionError("the text encoder was loaded before the refusal")

    monkeypatch.setattr(transformers.T5EncoderModel, "from_pretrained", no_loading)
    with pytest.raises(UserError) as caught:
        DynamiCtrlPipeline.from_pretrained(folder)
    assert_plain_cogvideox_refusal(str(caught.value))


def test_plain_cogvideox_transformer_is_refused_by_the_strict_load(tmp_path):
    folder = make_plain_cogvideox_folder(tmp_path)
    with pytest.raises(UserError) as caught:
        DynamiCtrlTransformer3DModel.from_pretrained(folder / "transformer")
    assert_plain_cogvideox_refusal(str(caught.value))


def test_sharded_plain_transformer_is_refused_from_its_shard_index(tmp_path):
    from dynamictrl.pipelines.model_index import check_pose_weights

    folder = tmp_path / "transformer"
    folder.mkdir()
    shutil.copy(FIXTURES / "v10" / "transformer" / "config.json", folder)
    names = list(load_file(FIXTURES / "v10" / "transformer" / WEIGHTS))
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {k: "shard-1.safetensors" for k in names}}))
    check_pose_weights(folder)  # the official weights: pose weights present
    index.write_text(json.dumps({"weight_map": {k: "shard-1.safetensors" for k in names if "control_norm1" not in k}}))
    with pytest.raises(UserError) as caught:
        check_pose_weights(folder)
    assert_plain_cogvideox_refusal(str(caught.value))


def test_infer_refuses_plain_cogvideox_folder_with_status_2_and_one_line(tmp_path):
    folder = make_plain_cogvideox_folder(tmp_path)
    golden = Golden("v10")
    write_image(tmp_path / "ref.png", golden.inputs["image"].numpy())
    write_video(tmp_path / "pose.mp4", golden.inputs["pose"].numpy(), lossless=True)
    command = [sys.executable, str(REPO / "scripts" / "infer.py"), "--model", str(folder)]
    command += ["--ref", str(tmp_path / "ref.png"), "--pose", str(tmp_path / "pose.mp4"), "--prompt", "x"]
    command += ["--out", str(tmp_path / "out.mp4")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "control_norm1" in errors[0] and "--transformer" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_plain_cogvideox_transformer_loads_with_explicit_pose_control_none(tmp_path):
    folder = make_plain_cogvideox_folder(tmp_path)
    model = DynamiCtrlTransformer3DModel.from_pretrained(folder / "transformer", pose_control="none")
    assert model.config.pose_control == "none"
    assert not any(p.is_meta for p in model.parameters())


def test_plain_base_with_the_official_transformer_passed_reproduces_official_latents(tmp_path):
    """What the refusal advises (``--model BASE --transformer DIR``), from Python."""
    golden = Golden("v10")
    transformer = DynamiCtrlTransformer3DModel.from_pretrained(FIXTURES / "v10" / "transformer")
    pipe = DynamiCtrlPipeline.from_pretrained(make_plain_cogvideox_folder(tmp_path), transformer=transformer)
    pipe.scheduler = CogVideoXDPMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    pipe.set_progress_bar_config(disable=True)
    assert_close(pipe(**golden.kwargs()).frames, golden.official["latents"], "latents", golden.tolerance)


def test_transformer_with_weights_the_model_does_not_use_is_refused(tmp_path):
    folder = make_folder(tmp_path, "v10", "official")
    weights = load_file(folder / "transformer" / WEIGHTS)
    weights["transformer_blocks.0.extra.weight"] = torch.zeros(2)
    save_file(weights, folder / "transformer" / WEIGHTS)
    with pytest.raises(UserError, match=r"unused \[transformer_blocks\.0\.extra\.weight\]"):
        DynamiCtrlPipeline.from_pretrained(folder)


def test_folder_whose_transformer_is_not_a_cogvideox_one_is_refused(tmp_path):
    folder = make_folder(tmp_path, "v10", "cogvideox")
    index = json.loads((folder / "model_index.json").read_text())
    index["transformer"] = ["diffusers", "UNet2DConditionModel"]
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="UNet2DConditionModel, not a DynamiCtrl transformer"):
        DynamiCtrlPipeline.from_pretrained(folder)


def test_official_package_name_we_do_not_provide_is_refused(tmp_path):
    folder = make_folder(tmp_path, "v10", "official")
    index = json.loads((folder / "model_index.json").read_text())
    index["scheduler"] = ["dynamictrl", "SomeOfficialScheduler"]
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="SomeOfficialScheduler"):
        DynamiCtrlPipeline.from_pretrained(folder)
