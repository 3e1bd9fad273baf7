"""The transformer as a well-behaved diffusers subclass: keyword-only forward, attention through diffusers'
dispatcher (``set_attention_backend``), fused projections, ``compile_repeated_blocks``, legacy pose weight names."""

from __future__ import annotations

import inspect
import json

import pytest
import torch
from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry
from diffusers.models.attention_processor import Attention
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock
from safetensors.torch import load_file, save_file

from dynamictrl.models import DynamiCtrlTransformer3DModel, build_transformer
from dynamictrl.models.attention import DynamiCtrlJointAttnProcessor, PoseCrossAttnProcessor
from dynamictrl.models.block import DynamiCtrlBlock

# fp32 on CPU: another attention kernel or a fused projection only reorders float sums (seen: < 2e-6).
ATOL = 1e-5
MODES = ("padaln", "uvt", "cross_attn")
# Backends of diffusers' dispatcher that run on a CPU-only torch (flash, efficient and cuDNN need CUDA).
CPU_BACKENDS = ("native", "_native_math", "_native_flash", "flex")


def _model(mode: str) -> DynamiCtrlTransformer3DModel:
    torch.manual_seed(0)
    return build_transformer("tiny", pose_control=mode, pose_zero_init=False).eval()  # live pose branches


def _inputs(model: DynamiCtrlTransformer3DModel, batch: int = 2, frames: int = 3) -> dict:
    g = torch.Generator().manual_seed(1)
    cfg = model.config
    c = cfg.out_channels
    return dict(
        hidden_states=torch.randn(batch, frames, 2 * c, 8, 8, generator=g),
        encoder_hidden_states=torch.randn(batch, cfg.max_text_seq_length, cfg.text_embed_dim, generator=g),
        timestep=torch.tensor([3, 700][:batch]),
        pose_latents=torch.randn(batch, frames, c, 8, 8, generator=g),
        image_rotary_emb=model.rotary_embedding(frames, 8, 8),
        return_dict=False,
    )


def _run(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs)[0]


@pytest.fixture
def restore_active_backend():
    """Our ``set_attention_backend`` must leave diffusers' process-wide active backend as it was (diffusers' own
    changes it, which leaked the kernel into every later model of the process): fail the test if it changed."""
    name, _ = _AttentionBackendRegistry.get_active_backend()
    yield
    leaked, _ = _AttentionBackendRegistry.get_active_backend()
    _AttentionBackendRegistry.set_active_backend(name)
    assert leaked == name, f"set_attention_backend changed the process-wide backend to {leaked}"


def test_set_attention_backend_stays_with_the_model(restore_active_backend):
    before, _ = _AttentionBackendRegistry.get_active_backend()
    tuned, fresh = _model("padaln"), _model("padaln")
    tuned.set_attention_backend("_native_math")
    processors = [m.processor for m in tuned.modules() if hasattr(m, "processor")]
    assert processors and all(p._attention_backend.value == "_native_math" for p in processors)
    assert all(m.processor._attention_backend is None for m in fresh.modules() if hasattr(m, "processor"))
    assert _AttentionBackendRegistry.get_active_backend()[0] == before  # models built later keep the default


def test_forward_arguments_after_timestep_are_keyword_only():
    params = inspect.signature(DynamiCtrlTransformer3DModel.forward).parameters
    names = list(params)
    assert names[:4] == ["self", "hidden_states", "encoder_hidden_states", "timestep"]
    assert {"pose_latents", "timestep_cond", "ofs", "image_rotary_emb"} <= set(names)
    assert all(params[name].kind is inspect.Parameter.KEYWORD_ONLY for name in names[4:])
    model = _model("padaln")
    inputs = _inputs(model)
    with pytest.raises(TypeError, match="positional"):
        model(inputs["hidden_states"], inputs["encoder_hidden_states"], inputs["timestep"], inputs["pose_latents"])


def test_block_takes_cogvideox_block_arguments_in_the_parents_order():
    parent = list(inspect.signature(CogVideoXBlock.forward).parameters)
    ours = list(inspect.signature(DynamiCtrlBlock.forward).parameters)
    assert ours[: len(parent)] == parent and ours[len(parent) :] == ["pose_tokens"]


@pytest.mark.parametrize("mode", MODES)
def test_every_attention_of_a_block_runs_through_diffusers_dispatcher(mode, monkeypatch, restore_active_backend):
    model = _model(mode)
    processors = [m.processor for m in model.modules() if isinstance(m, Attention)]
    expected = (
        (DynamiCtrlJointAttnProcessor, PoseCrossAttnProcessor)
        if mode == "cross_attn"
        else (DynamiCtrlJointAttnProcessor,)
    )
    assert len(processors) == len(expected) * model.config.num_layers
    assert {type(p) for p in processors} == set(expected)

    backend = AttentionBackendName._NATIVE_MATH
    calls = []
    original = _AttentionBackendRegistry._backends[backend]

    def counting(**kwargs):
        calls.append(kwargs["query"].shape)
        return original(**kwargs)

    monkeypatch.setitem(_AttentionBackendRegistry._backends, backend, counting)
    model.set_attention_backend(backend.value)
    assert all(p._attention_backend is backend for p in processors)
    _run(model, _inputs(model))
    assert len(calls) == len(processors)  # one dispatcher call per attention module, none bypassed


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_set_attention_backend_on_cpu_equals_eager_output(mode, backend, restore_active_backend):
    model = _model(mode)
    inputs = _inputs(model)
    reference = _run(model, inputs)  # processors unset: diffusers' default backend, native SDPA
    model.set_attention_backend(backend)
    torch.testing.assert_close(_run(model, inputs), reference, atol=ATOL, rtol=0)


def test_native_backend_is_bit_identical_to_the_default(restore_active_backend):
    model = _model("cross_attn")
    inputs = _inputs(model)
    reference = _run(model, inputs)
    model.set_attention_backend("native")
    assert torch.equal(_run(model, inputs), reference)


@pytest.mark.parametrize("mode", MODES)
def test_fused_projections_keep_our_processors_and_the_output(mode):
    model = _model(mode)
    inputs = _inputs(model)
    reference = _run(model, inputs)
    model.fuse_qkv_projections()
    block = model.transformer_blocks[0]
    assert block.attn1.fused_projections and isinstance(block.attn1.processor, DynamiCtrlJointAttnProcessor)
    if mode == "cross_attn":  # the pose cross-attention fuses K and V (its queries come from other tokens)
        assert block.pose_attn.fused_projections and hasattr(block.pose_attn, "to_kv")
        assert isinstance(block.pose_attn.processor, PoseCrossAttnProcessor)
    torch.testing.assert_close(_run(model, inputs), reference, atol=ATOL, rtol=0)
    model.unfuse_qkv_projections()
    assert not hasattr(block.attn1, "to_qkv") and not block.attn1.fused_projections
    assert torch.equal(_run(model, inputs), reference)


def test_compile_repeated_blocks_compiles_exactly_the_dynamictrl_blocks():
    torch._dynamo.reset()
    model = _model("padaln")
    inputs = _inputs(model)
    reference = _run(model, inputs)
    # fullgraph: the dispatcher path must trace into one graph per block (a graph break would raise)
    model.compile_repeated_blocks(backend="eager", fullgraph=True)
    compiled = [m for m in model.modules() if getattr(m, "_compiled_call_impl", None) is not None]
    assert compiled and all(isinstance(m, DynamiCtrlBlock) for m in compiled)
    assert len(compiled) == model.config.num_layers
    torch.testing.assert_close(_run(model, inputs), reference, atol=ATOL, rtol=0)
    torch._dynamo.reset()


def test_cross_attn_checkpoint_with_the_legacy_output_projection_name_loads(tmp_path):
    model = _model("cross_attn")
    inputs = _inputs(model)
    model.save_pretrained(tmp_path)
    weights = tmp_path / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    legacy = {k.replace(".pose_attn.to_out.0.", ".pose_attn.to_out."): v for k, v in state.items()}
    assert legacy.keys() != state.keys() and "transformer_blocks.0.pose_attn.to_out.weight" in legacy
    save_file(legacy, weights)
    assert json.loads((tmp_path / "config.json").read_text())["pose_control"] == "cross_attn"
    loaded = DynamiCtrlTransformer3DModel.from_pretrained(tmp_path).eval()
    assert torch.equal(_run(loaded, inputs), _run(model, inputs))
