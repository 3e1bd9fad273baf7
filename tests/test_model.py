"""DynamiCtrlTransformer3DModel: shapes, base equality, gradients, checkpoints, the official layout, bad configs."""

import json

import pytest
import torch
import torch.nn.functional as F
from diffusers import CogVideoXTransformer3DModel
from safetensors.torch import save_file

from dynamictrl.models import (
    POSE_CONTROLS,
    DynamiCtrlTransformer3DModel,
    build_transformer,
    is_pose_branch_key,
    preset_config,
)
from dynamictrl.models.presets import PRESETS

VARIANTS = {"tiny": 3, "tiny-1.5": 2}  # preset -> latent frames (1.5 needs a multiple of patch_size_t)


def make_inputs(preset, batch=2, seed=0):
    cfg = PRESETS[preset]
    g = torch.Generator().manual_seed(seed)
    frames, size = VARIANTS[preset], cfg["sample_height"]
    return dict(
        hidden_states=torch.randn(batch, frames, cfg["in_channels"], size, size, generator=g),
        encoder_hidden_states=torch.randn(batch, cfg["max_text_seq_length"], cfg["text_embed_dim"], generator=g),
        timestep=torch.tensor([3, 700][:batch]),
        pose_latents=torch.randn(batch, frames, cfg["out_channels"], size, size, generator=g),
        ofs=torch.full((batch,), 2.0) if cfg.get("ofs_embed_dim") else None,
    )


def run(model, inputs, rotary_from=None):
    """One forward pass; ``rotary_from`` supplies the rotary embedding for a plain diffusers model."""
    hs = inputs["hidden_states"]
    rotary = (rotary_from or model).rotary_embedding(hs.shape[1], hs.shape[3], hs.shape[4])
    return model(**inputs, image_rotary_emb=rotary).sample


def without_pose(inputs):
    return {k: v for k, v in inputs.items() if k != "pose_latents"}


def randomize(model, seed=1):
    """Give every parameter non-trivial values (so zero-initialised branches do not hide anything)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


@pytest.fixture(scope="module", params=list(VARIANTS))
def base_dir(request, tmp_path_factory):
    """A saved diffusers CogVideoXTransformer3DModel with random weights (a stand-in for CogVideoX-5B-I2V)."""
    cfg = preset_config(request.param)
    torch.manual_seed(0)
    base = randomize(CogVideoXTransformer3DModel(**cfg).eval())
    path = tmp_path_factory.mktemp(f"base-{request.param}")
    base.save_pretrained(path)
    return request.param, path, base


@pytest.mark.parametrize("preset", list(VARIANTS))
@pytest.mark.parametrize("mode", POSE_CONTROLS)
def test_output_shape_every_mode(preset, mode):
    model = build_transformer(preset, pose_control=mode).eval()
    inputs = make_inputs(preset)
    out = run(model, inputs)
    b, f, _, h, w = inputs["hidden_states"].shape
    assert out.shape == (b, f, PRESETS[preset]["out_channels"], h, w)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("mode", POSE_CONTROLS)
def test_step0_equals_diffusers_base(base_dir, mode):
    preset, path, base = base_dir
    model = DynamiCtrlTransformer3DModel.from_base(path, pose_control=mode).eval()
    inputs = make_inputs(preset)
    with torch.no_grad():
        ours = run(model, inputs)
        theirs = run(base, without_pose(inputs), rotary_from=model)
    assert torch.equal(ours, theirs)
    # the pose must matter once the branch is no longer zero
    randomize(model, seed=5)
    with torch.no_grad():
        changed = run(model, inputs)
        other_pose = run(model, {**inputs, "pose_latents": inputs["pose_latents"].flip(0)})
    if mode != "none":
        assert not torch.allclose(changed, other_pose)


def test_from_base_uvt_keeps_pretrained_patch_embedding(base_dir):
    preset, path, base = base_dir
    model = DynamiCtrlTransformer3DModel.from_base(path, pose_control="uvt")
    w_new, w_base = model.patch_embed.proj.weight, base.patch_embed.proj.weight
    assert torch.equal(w_new[:, : w_base.shape[1]], w_base)
    assert w_new[:, w_base.shape[1] :].abs().sum() == 0


def test_from_base_rejects_a_folder_that_is_not_cogvideox(tmp_path, base_dir):
    _, path, base = base_dir
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    state = {k: v.contiguous() for k, v in base.state_dict().items()}
    state["some_other.weight"] = torch.zeros(2)
    del state["proj_out.weight"]
    save_file(state, tmp_path / "diffusion_pytorch_model.safetensors")
    with pytest.raises(ValueError, match="proj_out.weight") as err:
        DynamiCtrlTransformer3DModel.from_base(tmp_path, pose_control="padaln")
    assert "some_other.weight" in str(err.value)


def test_from_base_reads_sharded_checkpoints(tmp_path, base_dir):
    preset, path, base = base_dir
    base.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "diffusion_pytorch_model.safetensors.index.json").is_file()
    model = DynamiCtrlTransformer3DModel.from_base(tmp_path, pose_control="padaln").eval()
    inputs = make_inputs(preset)
    with torch.no_grad():
        assert torch.equal(run(model, inputs), run(base, without_pose(inputs), rotary_from=model))


@pytest.mark.parametrize("mode", ["padaln", "uvt", "cross_attn"])
def test_gradients_reach_the_pose_branch(mode):
    model = build_transformer("tiny", pose_control=mode, pose_zero_init=False)
    run(model, make_inputs("tiny")).pow(2).mean().backward()
    branch = dict((n, p) for n, p in model.named_parameters() if is_pose_branch_key(n))
    if mode == "uvt":
        grad = model.patch_embed.proj.weight.grad[:, PRESETS["tiny"]["in_channels"] :]
        assert grad.abs().sum() > 0
    else:
        assert branch
        for name, p in branch.items():
            if name.endswith("norm.bias") or "norm_q" in name or "norm_k" in name or "norm.weight" in name:
                continue  # LayerNorm affine of a branch can be legitimately tiny; the linears must move
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert set(map(id, model.pose_branch_parameters())) >= set(map(id, branch.values()))


def test_zero_init_branch_still_learns():
    """At step 0 the zero-initialised branch is silent but not dead: its output layers receive gradient."""
    model = build_transformer("tiny", pose_control="padaln")
    run(model, make_inputs("tiny")).pow(2).mean().backward()
    for block in model.transformer_blocks:
        assert block.control_norm1.linear.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("preset", list(VARIANTS))
@pytest.mark.parametrize("mode", POSE_CONTROLS)
def test_save_load_round_trip_is_exact(tmp_path, preset, mode):
    model = randomize(build_transformer(preset, pose_control=mode, use_text=mode != "none").eval())
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["pose_control"] == mode
    loaded = DynamiCtrlTransformer3DModel.from_pretrained(tmp_path).eval()
    assert loaded.config.pose_control == mode and loaded.config.use_text == (mode != "none")
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    inputs = make_inputs(preset)
    with torch.no_grad():
        assert torch.equal(run(model, inputs), run(loaded, inputs))


def official_reference_forward(model, inputs):
    """The official DynamiCtrl forward, written out step by step from the official release's PadaLN contract."""
    cfg = model.config
    x, text, t, pose = (inputs[k] for k in ("hidden_states", "encoder_hidden_states", "timestep", "pose_latents"))
    b, f, _, h, w = x.shape
    rotary = model.rotary_embedding(f, h, w)
    emb = model.time_embedding(model.time_proj(t))
    if cfg.ofs_embed_dim:
        emb = emb + model.ofs_embedding(model.ofs_proj(inputs["ofs"]))
    n = text.shape[1]
    tokens = model.patch_embed(text, x)
    enc, hid = tokens[:, :n], tokens[:, n:]
    ctrl = model.patch_embed(text, torch.cat([pose, pose], dim=2))[:, n:]
    for blk in model.transformer_blocks:
        nh, ne, gate_msa, enc_gate_msa = blk.norm1(hid, enc, emb)
        shift, scale, gate = blk.control_norm1.linear(F.silu(emb)).chunk(3, dim=1)
        c = blk.control_norm1.norm(ctrl) * (1 + scale)[:, None] + shift[:, None]
        a, ae = blk.attn1(hidden_states=nh + c, encoder_hidden_states=ne, image_rotary_emb=rotary)
        hid, enc = hid + gate_msa * a, enc + enc_gate_msa * ae
        ctrl = c + gate[:, None] * c
        nh, ne, gate_ff, enc_gate_ff = blk.norm2(hid, enc, emb)
        ff = blk.ff(torch.cat([ne, nh], dim=1))
        hid, enc = hid + gate_ff * ff[:, n:], enc + enc_gate_ff * ff[:, :n]
    hid = model.norm_final(torch.cat([enc, hid], dim=1))[:, n:]
    return model._unpatchify(model.proj_out(model.norm_out(hid, temb=emb)), b, f, h, w)


@pytest.mark.parametrize("preset", list(VARIANTS))
def test_official_checkpoint_layout_loads_unchanged(tmp_path, preset):
    """A folder shaped like the official release (class DynamiCtrlTransformerModel, no pose_control key)."""
    cfg = preset_config(preset)
    base_keys = CogVideoXTransformer3DModel(**cfg).state_dict()
    g = torch.Generator().manual_seed(3)
    official = {k: torch.randn(v.shape, generator=g) * 0.2 for k, v in base_keys.items()}
    inner = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    for i in range(cfg["num_layers"]):
        prefix = f"transformer_blocks.{i}.control_norm1"
        official[f"{prefix}.linear.weight"] = torch.randn(3 * inner, cfg["time_embed_dim"], generator=g) * 0.2
        official[f"{prefix}.linear.bias"] = torch.randn(3 * inner, generator=g) * 0.2
        official[f"{prefix}.norm.weight"] = 1 + torch.randn(inner, generator=g) * 0.2
        official[f"{prefix}.norm.bias"] = torch.randn(inner, generator=g) * 0.2
    save_file(official, tmp_path / "diffusion_pytorch_model.safetensors")
    config = {"_class_name": "DynamiCtrlTransformerModel", "_diffusers_version": "0.31.0", **cfg}
    (tmp_path / "config.json").write_text(json.dumps(config))

    model = DynamiCtrlTransformer3DModel.from_pretrained(tmp_path).eval()
    assert model.config.pose_control == "padaln"
    ours = model.state_dict()
    assert set(ours) == set(official)
    for key, value in official.items():
        assert torch.equal(ours[key], value), key
    inputs = make_inputs(preset)
    with torch.no_grad():
        torch.testing.assert_close(run(model, inputs), official_reference_forward(model, inputs), atol=1e-5, rtol=0)


def test_use_text_false_ignores_the_prompt():
    model = randomize(build_transformer("tiny", use_text=False).eval())
    inputs = make_inputs("tiny")
    with torch.no_grad():
        a = run(model, inputs)
        b = run(model, {**inputs, "encoder_hidden_states": torch.randn_like(inputs["encoder_hidden_states"])})
        c = run(model, {**inputs, "encoder_hidden_states": None})
    assert torch.equal(a, b) and torch.equal(a, c)


def test_bad_configs_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="allowed values are padaln, uvt, cross_attn, none"):
        build_transformer("tiny", pose_control="adaln")
    with pytest.raises(ValueError, match="allowed values"):
        DynamiCtrlTransformer3DModel.from_config({**preset_config("tiny"), "pose_control": "concat"})
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        build_transformer("huge")
    with pytest.raises(ValueError, match="multiple of out_channels"):
        build_transformer("tiny", in_channels=6, out_channels=4)
    model = build_transformer("tiny")
    inputs = make_inputs("tiny")
    with pytest.raises(ValueError, match="needs pose_latents"):
        run(model, {**inputs, "pose_latents": None})
    with pytest.raises(ValueError, match="expected \\(B=2, F'=3"):
        run(model, {**inputs, "pose_latents": inputs["pose_latents"][:, :2]})
    with pytest.raises(ValueError, match="channels"):
        run(model, {**inputs, "pose_latents": inputs["pose_latents"].repeat(1, 1, 2, 1, 1)})
    with pytest.raises(ValueError, match="pass ofs"):
        run(build_transformer("tiny-1.5"), {**make_inputs("tiny-1.5"), "ofs": None})


def test_5b_padaln_parameter_count():
    """PadaLN adds 42 x (Linear(512 -> 3*3072) + LayerNorm(3072)) ~ 199 M parameters at 5B (meta device, no memory)."""
    with torch.device("meta"):
        model = build_transformer("cogvideox-5b-i2v", pose_control="padaln")
    branch = sum(p.numel() for n, p in model.named_parameters() if is_pose_branch_key(n))
    assert branch == 42 * (512 * 3 * 3072 + 3 * 3072 + 2 * 3072) == 198_825_984


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = randomize(build_transformer("tiny", pose_control="padaln"))
    inputs = make_inputs("tiny")
    run(model, inputs).pow(2).mean().backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.enable_gradient_checkpointing()
    run(model, inputs).pow(2).mean().backward()
    for a, p in zip(expected, model.parameters()):
        torch.testing.assert_close(p.grad, a)
