"""The embedded model's text encoder pre-training (dynamictrl.puppet.text_encoder) and its use by build_tiny_model.

Tiny step counts: the numbers of docs/results/text_encoder.md come from the full 3,000 steps."""

import copy

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, T5EncoderModel

from dynamictrl.cli import build_tiny_model
from dynamictrl.puppet import replace_background
from dynamictrl.puppet import text_encoder as te
from dynamictrl.puppet.palette import COLORS
from dynamictrl.puppet.word_tokenizer import build_word_tokenizer, words_of

MAX_LEN = 40  # the captions' longest is ~35 tokens; shorter than the model's 48 keeps the tests fast


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer(te.caption_corpus())


def random_encoder(tokenizer, seed=0):
    torch.manual_seed(seed)
    return T5EncoderModel(te.tiny_t5_config(tokenizer)).eval()


@pytest.fixture(scope="module")
def pretrained(tokenizer):
    """(random encoder, pre-trained copy, its probe) after 400 steps on 512 captions, without unseen-word
    replacement (the setting these tests' margins were measured on)."""
    start = random_encoder(tokenizer)
    encoder = copy.deepcopy(start)
    probe = te.train_caption_encoder(
        encoder, tokenizer, steps=400, num_captions=512, max_length=MAX_LEN, batch_size=32, lr=3e-3, unseen_words=0
    )
    return start, encoder, probe


@pytest.fixture(scope="module")
def held_out():
    return te.caption_set(te.TRAIN_STYLES, range(10**6, 10**6 + 64), split="test")


def test_vocabulary_holds_every_word_of_every_style(tokenizer):
    vocab = tokenizer.get_vocab()
    assert set(words_of(te.caption_corpus(600))) <= set(vocab)  # 600 captions: 50 per style and split
    assert set(COLORS) <= set(vocab)  # held-out colours too: the "heldout" style's prompts are not <unk>
    ids = tokenizer(te.caption_set(("heldout",), range(20)).captions).input_ids
    assert all(tokenizer.unk_token_id not in row for row in ids)


def test_pretraining_is_deterministic_per_seed(tokenizer):
    def run(seed):
        encoder = random_encoder(tokenizer)
        te.train_caption_encoder(encoder, tokenizer, steps=5, seed=seed, num_captions=32, max_length=MAX_LEN)
        return encoder.state_dict()

    first, again, other = run(0), run(0), run(1)
    start = random_encoder(tokenizer).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    assert not torch.equal(first["shared.weight"], start["shared.weight"])


def test_pretrained_encoder_reads_the_wall_colour_of_held_out_captions_far_above_chance(
    tokenizer, pretrained, held_out
):
    _, encoder, probe = pretrained
    accuracy = te.attribute_accuracy(encoder, probe, tokenizer, held_out, MAX_LEN)
    chance = te.majority_rate(te.caption_set(te.TRAIN_STYLES, range(256)), held_out)
    assert accuracy["wall_color"][1] == len(held_out.captions)
    assert accuracy["wall_color"][0] >= 3 * chance["wall_color"]
    assert accuracy["sleeves"][0] == 1.0  # one word ("t-shirt" / "long-sleeved"): easy even after 400 steps


def test_pretraining_keeps_the_output_scale_of_the_random_encoder(tokenizer, pretrained, held_out):
    start, encoder, _ = pretrained
    ids, mask = te.tokenize(tokenizer, held_out.captions, MAX_LEN)
    for model in (start, encoder):
        out = te.encode(model, ids)
        assert 0.95 < out[mask].std() < 1.05 and 0.95 < out.std() < 1.05
    assert torch.equal(encoder.encoder.final_layer_norm.weight, start.encoder.final_layer_norm.weight)


def test_captions_differing_only_in_the_wall_colour_differ_beyond_the_colour_word(tokenizer, pretrained, held_out):
    """A random T5 passes words through almost unchanged: the colour word naming the shirt and the same word
    naming the wall come out alike, and a new wall colour barely moves the other tokens. Pre-training makes the
    tokens carry their context (the masked-reference use: the wall named only in the prompt)."""
    start, encoder, _ = pretrained
    change = {}
    for name, model in (("random", start), ("pretrained", encoder)):
        largest = []
        for caption in held_out.captions[:8]:
            red, blue = (replace_background(caption, f"a plain {c} wall") for c in ("red", "blue"))
            ids, _ = te.tokenize(tokenizer, [red, blue], MAX_LEN)
            others = ids[0] == ids[1]  # every token but the wall's colour word
            assert others.sum() == MAX_LEN - 1
            out = te.encode(model, ids)
            largest.append((out[0] - out[1])[others].abs().max())
        change[name] = torch.stack(largest).mean()
    assert change["pretrained"] > 2 * change["random"]
    # after 400 steps the shared colour word moves a little (0.985 vs 0.999); after 3,000 steps, 0.84
    trained_similarity = te.shared_word_similarity(encoder, tokenizer, held_out, MAX_LEN)
    random_similarity = te.shared_word_similarity(start, tokenizer, held_out, MAX_LEN)
    assert random_similarity > 0.99 and trained_similarity < random_similarity - 0.005


def test_unseen_word_replacement_hides_exactly_the_attributes_the_replaced_words_named(tokenizer):
    data = te.caption_set(("demo",), [0])  # "... a white t-shirt, pink shorts and brown shoes. They have short
    # grey hair. The background is a plain green wall."
    ids, _ = te.tokenize(tokenizer, data.captions, MAX_LEN)
    targets = torch.zeros(1, len(te.ATTRIBUTES), dtype=torch.long)
    label_ids = te.label_token_ids(tokenizer, data)
    pick, hidden = te.hide_words(tokenizer, ids, label_ids, targets, rate=1.0)
    words = tokenizer.convert_ids_to_tokens(ids[0][pick[0]])
    assert sorted(words) == ["brown", "green", "grey", "pink", "plain", "white"]
    lost = {name for name, value in zip(te.ATTRIBUTES, hidden[0].tolist(), strict=True) if value < 0}
    assert lost == {"shirt_color", "bottom_color", "shoes_color", "hair_color", "wall_color", "background_pattern"}
    pick, kept = te.hide_words(tokenizer, ids, label_ids, targets, rate=0.0)
    assert not pick.any() and torch.equal(kept, targets)


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    from dynamictrl.models.tiny import tiny_vae

    path = tmp_path_factory.mktemp("vae")
    tiny_vae().save_pretrained(path)
    return path


def build_base(vae_dir, out, text_encoder):
    args = ["base", "--vae", str(vae_dir), "--out", str(out), "--layers", "1", "--heads", "2", "--head-dim", "8"]
    args += ["--text-encoder", text_encoder, "--text-steps", "3", "--text-captions", "16"]
    assert build_tiny_model.main(args) == 0
    return out


def test_base_folder_pretrained_text_encoder_loads_and_encodes_prompts_in_the_pipeline(vae_dir, tmp_path):
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler

    from dynamictrl.models import DynamiCtrlTransformer3DModel
    from dynamictrl.pipelines import DynamiCtrlPipeline

    base, v0 = build_base(vae_dir, tmp_path / "v1", "pretrained"), build_base(vae_dir, tmp_path / "v0", "random")
    text_encoder = T5EncoderModel.from_pretrained(base / "text_encoder")
    tokenizer = AutoTokenizer.from_pretrained(base / "tokenizer")
    pipe = DynamiCtrlPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=AutoencoderKLCogVideoX.from_pretrained(base / "vae"),
        # an untrained base has no pose weights yet; the text path is all this test needs
        transformer=DynamiCtrlTransformer3DModel.from_pretrained(base / "transformer", pose_control="none"),
        scheduler=CogVideoXDPMScheduler.from_pretrained(base / "scheduler"),
    )
    prompt = "The person in the image is wearing a red t-shirt. The background is a plain blue wall."
    embeds, negative = pipe.encode_prompt(prompt, do_classifier_free_guidance=True)
    assert embeds.shape == negative.shape == (1, 48, te.TEXT_EMBED_DIM)
    # the same numbers as the pre-training code computes (up to SDPA's grad / no-grad kernels)
    torch.testing.assert_close(embeds, te.encode(text_encoder, te.tokenize(tokenizer, [prompt], 48)[0]))
    weights = "model.safetensors"
    assert not torch.equal(*(load_file(str(b / "text_encoder" / weights))["shared.weight"] for b in (base, v0)))
    transformer = "transformer/diffusion_pytorch_model.safetensors"
    first, second = (load_file(str(b / transformer)) for b in (base, v0))
    assert all(torch.equal(first[k], second[k]) for k in first)  # the text encoder choice leaves the rest alone


def test_base_refuses_zero_text_steps_in_one_line(vae_dir, tmp_path, capsys):
    args = ["base", "--vae", str(vae_dir), "--out", str(tmp_path / "b"), "--text-steps", "0"]
    assert build_tiny_model.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --text-steps 0") and "\n" not in err
    assert not (tmp_path / "b").exists()


def test_command_default_unseen_word_rate_is_the_pretraining_default():
    assert build_tiny_model.TEXT_UNSEEN_WORDS == te.UNSEEN_WORDS


@pytest.mark.parametrize(("command", "flag"), [("base", "--text-unseen-words"), ("text-report", "--unseen-words")])
def test_unseen_word_rate_outside_0_to_1_is_a_one_line_error(vae_dir, tmp_path, capsys, command, flag):
    args = [command, flag, "1.5"] + (["--vae", str(vae_dir), "--out", str(tmp_path / "b")] if command == "base" else [])
    assert build_tiny_model.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {flag} 1.5") and "a rate from 0 to 1" in err and "\n" not in err
    assert not (tmp_path / "b").exists()
