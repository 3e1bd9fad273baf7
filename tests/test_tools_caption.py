"""Captions: prompts.txt round trip, template mode, and the Qwen2-VL batching/prompt/parse plumbing on a tiny
randomly initialised Qwen2-VL.

The real Qwen2VLProcessor cannot be built in this environment: transformers 5 requires torchvision for its video
processor, and torchvision must not be installed here. The VLM test therefore pairs the tiny real model with a
minimal stand-in processor (real byte-level tokenizer + transformers' PIL Qwen2-VL image processor, expanding
each image placeholder into its vision tokens the way Qwen2VLProcessor does).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dynamictrl.data.io import write_video
from dynamictrl.data.prompts import read_prompts, write_prompts
from dynamictrl.preprocess.captions import QwenCaptioner, clean_caption, sample_frame_indices, template_caption

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("caption_tool", ROOT / "tools" / "caption.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prompts_round_trip_exact(tmp_path):
    captions = {
        "a.mp4": "The person in the image is wearing a red dress. The background is a beach.",
        "b c.mp4": "  spaces kept  ",
        "ü.mp4": "Unicode — ok, and # single hashes ## too",
        "empty.mp4": "",
    }
    path = write_prompts(tmp_path / "prompts.txt", captions)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "a.mp4#####" + captions["a.mp4"]
    back = read_prompts(path)
    assert back == captions and list(back) == list(captions)
    assert write_prompts(tmp_path / "again.txt", back).read_bytes() == path.read_bytes()


def test_prompts_errors(tmp_path):
    with pytest.raises(ValueError, match="line break"):
        write_prompts(tmp_path / "p.txt", {"a.mp4": "two\nlines"})
    with pytest.raises(ValueError, match="#####"):
        write_prompts(tmp_path / "p.txt", {"a#####b.mp4": "x"})
    (tmp_path / "bad.txt").write_text("a.mp4#####ok\nno separator here\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        read_prompts(tmp_path / "bad.txt")
    (tmp_path / "dup.txt").write_text("a.mp4#####x\n\na.mp4#####y\n")
    with pytest.raises(ValueError, match="twice"):
        read_prompts(tmp_path / "dup.txt")


def test_template_and_cleaning():
    cap = template_caption("a red dress", "a sunny beach", lighting="bright")
    assert (
        cap
        == "The person in the image is wearing a red dress. The background is a sunny beach. The lighting is bright."
    )
    cap = template_caption("jeans", "a park.", person="a tall man")
    assert cap.startswith("The person in the image is a tall man. They are wearing jeans. The background is a park.")
    with pytest.raises(ValueError, match="clothing and background"):
        template_caption("", "x")
    assert clean_caption(' "The person\n\nis here<|im_end|> ##### ok" ') == "The person is here ok."
    assert sample_frame_indices(10, 3).tolist() == [0, 4, 9] and sample_frame_indices(2, 5).tolist() == [0, 1]


def test_template_tool(tmp_path, capsys):
    videos = tmp_path / "videos"
    for name in ("b.mp4", "a.mp4"):
        write_video(videos / name, np.zeros((1, 16, 16, 3), np.uint8))
    out = tmp_path / "prompts.txt"
    write_prompts(out, {"old.mp4": "kept"})
    tool = _tool()
    args = [str(videos), "--out", str(out), "--template", "--clothing", "a coat", "--background", "snow"]
    assert tool.main(args) == 0
    got = read_prompts(out)
    assert list(got) == ["old.mp4", "a.mp4", "b.mp4"]
    assert got["a.mp4"] == "The person in the image is wearing a coat. The background is snow."
    assert tool.main([str(videos), "--out", str(out), "--template", "--clothing", "x"]) == 2
    assert tool.main([str(videos), "--out", str(out)]) == 2  # neither a model nor --template
    with pytest.raises(SystemExit):
        tool.main(["--help"])
    assert "--model-dir" in capsys.readouterr().out


# ---------------------------------------------------------------- tiny Qwen2-VL
class StandInProcessor:
    """What Qwen2VLProcessor does for images: chat template, image features, placeholder expansion, tokenising."""

    def __init__(self, tokenizer, image_processor, chat_template):
        self.tokenizer, self.image_processor, self.chat_template = tokenizer, image_processor, chat_template
        self.calls = []

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, tokenize=tokenize, add_generation_prompt=add_generation_prompt
        )

    def __call__(self, text, images, padding=True, return_tensors="pt"):
        self.calls.append((list(text), len(images)))
        feats = self.image_processor(images=images, return_tensors="pt")
        counts = iter((feats["image_grid_thw"].prod(-1) // 4).tolist())  # spatial merge 2x2
        expanded = [
            "".join(
                part + ("<|image_pad|>" * next(counts) if i < t.count("<|image_pad|>") else "")
                for i, part in enumerate(t.split("<|image_pad|>"))
            )
            for t in text
        ]
        enc = self.tokenizer(expanded, padding=padding, return_tensors=return_tensors)
        return {**enc, "pixel_values": feats["pixel_values"], "image_grid_thw": feats["image_grid_thw"]}

    def batch_decode(self, ids, skip_special_tokens=True):
        return self.tokenizer.batch_decode(ids, skip_special_tokens=skip_special_tokens)


CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_qwen():
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", additional_special_tokens=specials
    )
    ids = dict(zip(specials, tokenizer.convert_tokens_to_ids(specials)))
    image_processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=56 * 56)
    torch.manual_seed(0)
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=1024,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 2, 2]},
        ),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, patch_size=14),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    model = Qwen2VLForConditionalGeneration(config).eval()
    return model, StandInProcessor(tokenizer, image_processor, CHAT_TEMPLATE)


def test_qwen_batch_plumbing(tiny_qwen):
    model, processor = tiny_qwen
    captioner = QwenCaptioner(model=model, processor=processor, frames_per_clip=2, max_side=56, max_new_tokens=6)
    assert processor.tokenizer.padding_side == "left"
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 255, (5, 80, 60, 3), np.uint8), rng.integers(0, 255, (1, 40, 90, 3), np.uint8)]
    captions = captioner.caption_batch(clips)
    assert len(captions) == 2 and all(isinstance(c, str) and "\n" not in c and "#####" not in c for c in captions)
    texts, n_images = processor.calls[-1]
    assert n_images == 3  # 2 frames from the 5-frame clip, 1 from the 1-frame clip, one generate call
    assert texts[0].count("<|image_pad|>") == 2 and texts[1].count("<|image_pad|>") == 1
    assert "The person in the image is wearing" in texts[0] and texts[0].endswith("<|im_start|>assistant\n")
    # Batching changes nothing: each clip alone gets the same (greedy) caption.
    assert [captioner.caption_batch([c])[0] for c in clips] == captions


def test_caption_tool_with_model(tiny_qwen, tmp_path, monkeypatch):
    model, processor = tiny_qwen
    monkeypatch.setattr(QwenCaptioner, "_load", staticmethod(lambda *a: (model, processor)))
    rng = np.random.default_rng(1)
    for name in ("x.mp4", "y.mp4", "z.mp4"):
        write_video(tmp_path / "v" / name, rng.integers(0, 255, (2, 32, 32, 3), np.uint8))
    out = tmp_path / "prompts.txt"
    args = [str(tmp_path / "v"), "--out", str(out), "--model-dir", str(tmp_path), "--batch-size", "2"]
    assert _tool().main(args + ["--max-new-tokens", "4", "--max-side", "56"]) == 0
    assert list(read_prompts(out)) == ["x.mp4", "y.mp4", "z.mp4"]
    assert [n for _, n in processor.calls[-2:]] == [4, 2]  # batches of 2 then 1 clip, 2 frames each (clips are 2 long)


def test_missing_model_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="Qwen2-VL"):
        QwenCaptioner(tmp_path)
