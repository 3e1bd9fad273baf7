"""Training config: strict keys, typed values, allowed switches, the shipped configs load and build their models."""

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from dynamictrl.training.config import check_preset, load_config, to_yaml

REPO = Path(__file__).resolve().parents[1]
TRAIN_CONFIGS = sorted((REPO / "configs" / "train").glob("*.yaml"))
ABLATIONS = {  # config -> (pose_control, use_text)
    "padaln.yaml": ("padaln", True),
    "uvt.yaml": ("uvt", True),
    "cross_attn.yaml": ("cross_attn", True),
    "no_text.yaml": ("padaln", False),
    "masked_background.yaml": ("padaln", True),
    "tiny_cpu.yaml": ("padaln", True),
    "tiny_puppet.yaml": ("padaln", True),
    "tiny_puppet_v1.yaml": ("padaln", True),
}


def test_unknown_key_fails_naming_it(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  root: /x\n  num_frame: 13\n")
    with pytest.raises(ValueError, match=r"data\.num_frame"):
        load_config(path)
    with pytest.raises(ValueError, match=r"train\.max_step"):
        load_config(None, ["data.root=/x", "train.max_step=3"])


def test_bad_values_and_missing_keys():
    with pytest.raises(ValueError, match="train.max_steps"):
        load_config(None, ["data.root=/x", "train.max_steps=many"])
    with pytest.raises(ValueError, match="data.root"):
        load_config(None, [])
    with pytest.raises(ValueError, match="padaln, uvt, cross_attn, none"):
        load_config(None, ["data.root=/x", "model.pose_control=adaln"])
    with pytest.raises(ValueError, match="full, pose_branch_only, lora"):
        load_config(None, ["data.root=/x", "train.trainable=some"])
    with pytest.raises(ValueError, match="multiples of 8"):
        load_config(None, ["data.root=/x", "data.height=60"])
    with pytest.raises(ValueError, match="model.base_path"):
        load_config(None, ["data.root=/x", "model.source=base"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["data.root=/x", "train.max_steps"])


def test_overrides_and_yaml_roundtrip(tmp_path):
    cfg = load_config(REPO / "configs/train/tiny_cpu.yaml", ["train.max_steps=7", "train.mixed_precision=no"])
    assert cfg.train.max_steps == 7 and cfg.train.mixed_precision == "no"
    saved = tmp_path / "c.yaml"
    saved.write_text(to_yaml(cfg))
    again = load_config(saved)
    assert to_yaml(again) == to_yaml(cfg)
    with pytest.raises(Exception):  # noqa: B017  (read-only once loaded; OmegaConf raises its own type)
        cfg.train.max_steps = 3


# What docs/training.md says each ablation changes in padaln.yaml (its base), and nothing else.
DOCUMENTED_DELTAS = {
    "uvt.yaml": {"model.pose_control": "uvt", "train.output_dir": "runs/uvt"},
    "cross_attn.yaml": {"model.pose_control": "cross_attn", "train.output_dir": "runs/cross_attn"},
    "no_text.yaml": {"model.use_text": False, "data.text_dropout_prob": 0.0, "train.output_dir": "runs/no_text"},
    "masked_background.yaml": {
        "data.reference_mask_prob": 0.9,
        "data.text_dropout_prob": 0.05,
        "train.max_steps": 20000,
        "train.output_dir": "runs/masked_background",
    },
}


def _flat(cfg) -> dict:
    def walk(node, prefix):
        for key, value in node.items():
            yield from walk(value, f"{prefix}{key}.") if isinstance(value, dict) else [(prefix + key, value)]

    return dict(walk(OmegaConf.to_container(cfg), ""))


def test_every_shipped_config_is_covered():
    assert {p.name for p in TRAIN_CONFIGS} == set(ABLATIONS)
    assert set(DOCUMENTED_DELTAS) == set(ABLATIONS) - {
        "padaln.yaml",
        "tiny_cpu.yaml",
        "tiny_puppet.yaml",
        "tiny_puppet_v1.yaml",
    }


def test_embedded_v1_recipe_is_v0s_plus_exactly_its_commented_keys():
    path = REPO / "configs/train/tiny_puppet_v1.yaml"
    assert OmegaConf.load(path).base == "tiny_puppet.yaml"
    base, v1 = _flat(load_config(REPO / "configs/train/tiny_puppet.yaml")), _flat(load_config(path))
    assert {key: value for key, value in v1.items() if value != base[key]} == {
        "model.base_path": "runs/tiny-base-v1",
        "data.root": "data/puppet-v1/train",
        "data.latents": "data/puppet-v1/train/latents9",
        "data.reference_mask_prob": 0.35,
        "train.output_dir": "runs/tiny_puppet_v1",
        "train.max_steps": 12000,
    }


@pytest.mark.parametrize("name", sorted(DOCUMENTED_DELTAS))
def test_ablation_config_is_padaln_plus_exactly_its_documented_keys(name):
    path = REPO / "configs/train" / name
    assert OmegaConf.load(path).base == "padaln.yaml"  # a delta, not a copy
    base, ablation = _flat(load_config(REPO / "configs/train/padaln.yaml")), _flat(load_config(path))
    differ = {key: value for key, value in ablation.items() if value != base[key]}
    assert differ == DOCUMENTED_DELTAS[name]
    assert "base" not in OmegaConf.create(to_yaml(load_config(path)))  # the saved config is the resolved one


def test_config_base_chain_resolves_relative_to_each_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "root.yaml").write_text("data:\n  root: /x\n  num_frames: 9\ntrain:\n  max_steps: 5\n")
    (tmp_path / "a/mid.yaml").write_text("base: ../root.yaml\ntrain:\n  max_steps: 6\n  seed: 1\n")
    (tmp_path / "a/top.yaml").write_text("base: mid.yaml\ntrain:\n  seed: 2\n")
    cfg = load_config(tmp_path / "a/top.yaml", ["data.num_frames=13"])
    assert (cfg.data.root, cfg.data.num_frames, cfg.train.max_steps, cfg.train.seed) == ("/x", 13, 6, 2)


def test_missing_or_cyclic_config_base_is_a_one_line_error(tmp_path):
    (tmp_path / "orphan.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ValueError, match=r"base: 'nowhere.yaml' is not a config file") as err:
        load_config(tmp_path / "orphan.yaml")
    assert "\n" not in str(err.value)
    (tmp_path / "x.yaml").write_text("base: y.yaml\n")
    (tmp_path / "y.yaml").write_text("base: x.yaml\ndata:\n  root: /x\n")
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    for name in ("x.yaml", "self.yaml"):
        with pytest.raises(ValueError, match="config bases form a cycle") as err:
            load_config(tmp_path / name)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_ablation_config_loads_and_builds_its_model(path):
    from accelerate import init_empty_weights

    from dynamictrl.models import build_transformer
    from dynamictrl.training.spec import load_components

    cfg = load_config(path)
    pose_control, use_text = ABLATIONS[path.name]
    assert (cfg.model.pose_control, cfg.model.use_text) == (pose_control, use_text)
    # the structure at full size (no memory: meta tensors), from the preset the config names (preset null: the
    # embedded model's shape, which tiny_puppet.yaml trained)
    with init_empty_weights():
        if cfg.model.preset is None:
            from dynamictrl.models import DynamiCtrlTransformer3DModel

            shape = json.loads((REPO / "dynamictrl/assets/models/dynamictrl-tiny/transformer/config.json").read_text())
            model = DynamiCtrlTransformer3DModel.from_config({**shape, "pose_control": pose_control})
        else:
            model = build_transformer(cfg.model.preset, pose_control=pose_control, use_text=use_text)
    assert model.config.pose_control == pose_control
    if pose_control != "none":
        assert model.pose_branch_parameters()
    # and a real tiny build through the trainer's loader, then one forward
    tiny = load_config(path, ["model.source=tiny", "model.preset=tiny"])
    components = load_components(tiny.model, need_vae=False, need_text=False)
    t = components.transformer
    assert (t.config.pose_control, t.config.use_text) == (pose_control, use_text)
    latents = torch.randn(1, 2, 4, 8, 8)
    out = t(
        hidden_states=torch.cat([latents, latents], dim=2),
        encoder_hidden_states=torch.randn(1, 8, 16) if use_text else None,
        timestep=torch.tensor([10]),
        pose_latents=latents,
        image_rotary_emb=t.rotary_embedding(2, 8, 8),
        return_dict=False,
    )[0]
    assert out.shape == latents.shape


def test_5b_configs_point_at_a_cogvideox_folder():
    for name in ("padaln.yaml", "uvt.yaml", "cross_attn.yaml", "no_text.yaml", "masked_background.yaml"):
        cfg = load_config(REPO / "configs/train" / name)
        assert cfg.model.source == "base" and cfg.model.base_path
        assert cfg.model.preset == "cogvideox1.5-5b-i2v"
        assert cfg.optimizer.lr == pytest.approx(5e-6) and cfg.optimizer.lr_scheduler == "cosine_with_restarts"
        assert cfg.train.mixed_precision == "bf16" and cfg.train.gradient_checkpointing
    masked = load_config(REPO / "configs/train/masked_background.yaml")
    assert masked.data.reference_mask_prob > 0


def test_preset_is_checked_against_the_base_transformer_config(tmp_path):
    from dynamictrl.models import build_transformer

    tiny = dict(build_transformer("tiny").config)
    model = load_config(None, ["data.root=/x", "model.source=base", "model.base_path=/b"]).model
    assert model.preset == "tiny"
    check_preset(model, tiny, "base/transformer")  # the shape it names: accepted
    check_preset(model, {k: v for k, v in tiny.items() if k not in ("ofs_embed_dim", "patch_size_t")}, "b")  # defaults
    wrong = load_config(None, ["data.root=/x", "model.source=base", "model.base_path=/b", "model.preset=tiny-1.5"])
    with pytest.raises(ValueError, match=r"base/transformer is not the model.preset=tiny-1.5 shape: .*ofs_embed_dim"):
        check_preset(wrong.model, tiny, "base/transformer")
    free = load_config(None, ["data.root=/x", "model.source=base", "model.base_path=/b", "model.preset=null"])
    check_preset(free.model, {"num_layers": 6}, "base/transformer")  # null: any shape
    with pytest.raises(ValueError, match="model.preset='huge' is not allowed; choose one of tiny, tiny-1.5"):
        load_config(None, ["data.root=/x", "model.source=base", "model.base_path=/b", "model.preset=huge"])


def test_train_cli_refuses_a_base_of_another_shape_than_the_preset_before_loading(tmp_path):
    from dynamictrl.cli import check_train_paths
    from dynamictrl.errors import UserError
    from dynamictrl.models import build_transformer

    for part in ("scheduler", "vae", "tokenizer", "text_encoder", "transformer"):
        (tmp_path / "base" / part).mkdir(parents=True)
    (tmp_path / "base/transformer/config.json").write_text(json.dumps(dict(build_transformer("tiny-1.5").config)))
    cfg = load_config(
        REPO / "configs/train/tiny_cpu.yaml", ["model.source=base", f"model.base_path={tmp_path / 'base'}"]
    )
    with pytest.raises(UserError, match=r"is not the model.preset=tiny shape: .*ofs_embed_dim=16 \(preset: None\)"):
        check_train_paths(cfg)
