"""Pre-training the embedded model's tiny T5 encoder so that its output tokens carry every caption attribute.

CogVideoX freezes T5 and caches its embeddings; the embedded model keeps that (trainer and latent cache unchanged),
but its 2-layer T5 is tiny, so a random one gives each word an almost fixed vector: "red" in "a red t-shirt" and
"red" in "a plain red wall" come out alike, and the transformer's joint attention (content-based for text tokens:
rotary positions are for video tokens only) cannot tell which one names the wall. Pre-training fixes that with the
operation the transformer performs: one learned query per caption attribute attends (softmax, padding masked) over
the encoder's output tokens and a linear head classifies the attribute (:class:`AttributeProbe`). The encoder, the
queries and the heads are trained together on puppet-world captions of the training styles; the queries and heads
are then dropped and the encoder is saved like any T5 encoder.

The same probe trained on a frozen random encoder (:func:`fit_probe` with ``train_encoder=False``) measures what
the random encoder already offers. Prompts are tokenised as the pipeline does (padded to ``max_length``, no
attention mask in T5), so the encoder is trained on exactly the sequences it will see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dynamictrl.puppet.motion import SPLITS
from dynamictrl.puppet.palette import COLORS, HAIR_COLORS
from dynamictrl.puppet.world import STYLES, make_sample

#: Attribute name -> (section of ``sample.meta``, key): everything a caption says about the person and the wall.
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "background_pattern": ("background", "pattern"),
    "wall_color": ("background", "color"),
    "wall_secondary": ("background", "secondary"),
    "shirt_color": ("clothing", "shirt_color"),
    "shirt_pattern": ("clothing", "shirt_pattern"),
    "shirt_secondary": ("clothing", "shirt_secondary"),
    "sleeves": ("clothing", "sleeves"),
    "bottom": ("clothing", "bottom"),
    "bottom_color": ("clothing", "bottom_color"),
    "shoes_color": ("clothing", "shoes_color"),
    "hair_color": ("clothing", "hair_color"),
    "hair_style": ("clothing", "hair_style"),
}
#: The styles the embedded model is trained on ("heldout" stays for testing).
TRAIN_STYLES: tuple[str, ...] = ("wide", "demo")
TEXT_EMBED_DIM = 64  # d_model of the embedded model's T5 (the transformer's text_embed_dim)
#: Words that name a background pattern and nothing else (held-out patterns too): replaced like colour words.
_PATTERN_WORDS = ("plain", "vertical", "horizontal", "checkered", "brick", "polka", "dots", "sky", "clouds", "grass")
_IGNORE = -100  # cross-entropy's ignore index: a label the heads have no class for
#: Default rate of :func:`fit_probe`'s unseen-word replacement for pre-training (docs/results/text_encoder.md).
UNSEEN_WORDS = 0.15


def caption_corpus(num: int = 400) -> list[str]:
    """Captions of every style and split of the puppet world: the word vocabulary of the embedded model (53 words;
    400 captions already hold every one)."""
    return [
        make_sample(seed, split=split, size=16, frames=1, style=style, render_pose=False).caption
        for style in STYLES
        for split in SPLITS
        for seed in range(num // (len(STYLES) * len(SPLITS)))
    ]


def tiny_t5_config(tokenizer):
    """The embedded model's T5 encoder config: 2 layers, d_model 64, for ``tokenizer``'s vocabulary."""
    from transformers import T5Config

    return T5Config(
        vocab_size=len(tokenizer),
        d_model=TEXT_EMBED_DIM,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=16,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


@dataclass
class CaptionSet:
    """Captions and, per attribute, each caption's label (``"none"`` where the caption has none, e.g. the secondary
    colour of a plain wall)."""

    captions: list[str]
    labels: dict[str, list[str]]


def caption_set(styles, seeds, split: str = "train") -> CaptionSet:
    """Captions and attributes of ``make_sample(seed, split, style=...)`` for every style and seed (no rendering
    beyond the smallest frame: captions do not depend on the frame size)."""
    captions, labels = [], {name: [] for name in ATTRIBUTES}
    for style in styles:
        for seed in seeds:
            sample = make_sample(int(seed), split=split, size=16, frames=1, style=style, render_pose=False)
            captions.append(sample.caption)
            for name, (section, key) in ATTRIBUTES.items():
                value = sample.meta[section][key]
                labels[name].append("none" if value is None else str(value))
    return CaptionSet(captions, labels)


class AttributeProbe(nn.Module):
    """Reads caption attributes from text tokens as a transformer's attention would: one learned query per
    attribute attends (softmax over the non-padding tokens) over key-projected tokens, and a linear head per
    attribute classifies the attended token mix. No positions: the tokens must carry them."""

    def __init__(self, dim: int, classes: dict[str, tuple[str, ...]]) -> None:
        super().__init__()
        self.classes = dict(classes)
        self.queries = nn.Parameter(torch.randn(len(classes), dim) / math.sqrt(dim))
        self.key = nn.Linear(dim, dim, bias=False)
        self.heads = nn.ModuleList(nn.Linear(dim, len(c)) for c in classes.values())

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Logits (B, classes) per attribute, in ``classes`` order, for ``tokens`` (B, L, D), ``mask`` (B, L)."""
        scores = torch.einsum("ad,bld->bal", self.queries, self.key(tokens)) / math.sqrt(tokens.shape[-1])
        weights = scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1)
        read = torch.einsum("bal,bld->bad", weights, tokens)
        return [head(read[:, i]) for i, head in enumerate(self.heads)]


def tokenize(tokenizer, captions: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, mask)`` as the pipeline tokenises prompts (padded / truncated to ``max_length``)."""
    tokens = tokenizer(captions, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    return tokens.input_ids, tokens.attention_mask.bool()


def _targets(classes: dict[str, tuple[str, ...]], data: CaptionSet) -> torch.Tensor:
    """(N, attributes) class indices; a label the heads have no class for is ignored."""
    index = {name: {c: i for i, c in enumerate(cs)} for name, cs in classes.items()}
    rows = [[index[name].get(data.labels[name][j], _IGNORE) for name in classes] for j in range(len(data.captions))]
    return torch.tensor(rows, dtype=torch.long).reshape(len(data.captions), len(classes))


@torch.no_grad()
def encode(encoder, input_ids: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """The encoder's output tokens (N, L, D), as the pipeline computes them (no attention mask)."""
    return torch.cat([encoder(input_ids[i : i + chunk])[0] for i in range(0, len(input_ids), chunk)])


def label_token_ids(tokenizer, data: CaptionSet) -> torch.Tensor:
    """(N, attributes) token id of each label as a word ("red" -> id of "red"; labels that are no word: <unk>)."""
    return torch.tensor([tokenizer.convert_tokens_to_ids(list(labels)) for labels in data.labels.values()]).T


def hide_words(
    tokenizer, ids: torch.Tensor, label_ids: torch.Tensor, targets: torch.Tensor, rate: float, generator=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick colour and background-pattern words of ``ids`` (B, L) to replace, each with probability ``rate``;
    returns the (B, L) pick and ``targets`` (B, attributes, in :data:`ATTRIBUTES` order) with the attributes a
    picked word named set to the ignore index: a colour attribute whose label is that word (every one, if the
    same colour is named twice), the background pattern for a pattern word."""
    colours = torch.tensor(tokenizer.convert_tokens_to_ids(sorted(set(COLORS) | set(HAIR_COLORS))))
    patterns = torch.tensor(tokenizer.convert_tokens_to_ids(list(_PATTERN_WORDS)))
    pick = (torch.isin(ids, colours) | torch.isin(ids, patterns)) & (torch.rand(ids.shape, generator=generator) < rate)
    lost = (pick[:, None, :] & (ids[:, None, :] == label_ids[:, :, None])).any(-1)  # (B, attributes)
    lost[:, list(ATTRIBUTES).index("background_pattern")] |= (pick & torch.isin(ids, patterns)).any(-1)
    return pick, targets.masked_fill(lost, _IGNORE)


def fit_probe(
    encoder,
    tokenizer,
    data: CaptionSet,
    steps: int,
    seed: int = 0,
    train_encoder: bool = True,
    batch_size: int = 64,
    lr: float = 1e-3,
    max_length: int = 48,
    unseen_words: float = 0.0,
) -> AttributeProbe:
    """Train an :class:`AttributeProbe` for every attribute of ``data`` on ``encoder``'s output tokens (AdamW,
    cross-entropy summed over attributes, cosine schedule); with ``train_encoder`` the encoder learns too (in
    place). Its final layer norm stays fixed, so every output token keeps the unit RMS of the random encoder, the
    range the transformer's text projection is trained for. Deterministic given ``seed`` and the encoder.

    ``unseen_words`` (with ``train_encoder``): the probability that a colour or background-pattern word's input
    embedding is replaced by a fresh draw from the embeddings' initial distribution, which is what a word no
    training caption uses (a held-out colour or pattern) still has; the attributes that word named are not scored
    for that caption. This teaches the encoder to read the other attributes around words it has never seen."""
    from diffusers.optimization import get_cosine_schedule_with_warmup

    classes = {name: tuple(sorted(set(labels))) for name, labels in data.labels.items()}
    input_ids, mask = tokenize(tokenizer, data.captions, max_length)
    targets = _targets(classes, data)
    label_ids = label_token_ids(tokenizer, data)
    init_std = encoder.config.initializer_factor  # T5 draws its word embeddings from N(0, factor^2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = AttributeProbe(encoder.config.d_model, classes)
    encoder.requires_grad_(train_encoder)
    encoder.encoder.final_layer_norm.weight.requires_grad_(False)
    encoder.train(train_encoder)
    frozen_tokens = None if train_encoder else encode(encoder.eval(), input_ids)
    params = list(probe.parameters()) + [p for p in encoder.parameters() if p.requires_grad]
    # no weight decay: words that no training caption uses (held-out colours) keep their vectors
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, min(100, steps // 10), steps)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss(ignore_index=_IGNORE)
    for _ in range(steps):
        batch = torch.randint(len(input_ids), (batch_size,), generator=generator)
        ids, target = input_ids[batch], targets[batch]
        if not train_encoder:
            tokens = frozen_tokens[batch]
        elif unseen_words:
            embeds = encoder.get_input_embeddings()(ids)
            unseen, target = hide_words(tokenizer, ids, label_ids[batch], target, unseen_words, generator)
            noise = torch.randn(embeds.shape, generator=generator) * init_std
            tokens = encoder(inputs_embeds=torch.where(unseen[..., None], noise, embeds))[0]
        else:
            tokens = encoder(ids)[0]
        logits = probe(tokens, mask[batch])
        loss = sum(loss_fn(out, target[:, i]) for i, out in enumerate(logits))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    encoder.requires_grad_(False).eval()
    return probe.requires_grad_(False).eval()


def train_caption_encoder(
    encoder,
    tokenizer,
    steps: int = 3000,
    seed: int = 0,
    num_captions: int = 4096,
    max_length: int = 48,
    threads: int | None = 1,
    batch_size: int = 64,
    lr: float = 1e-3,
    unseen_words: float = UNSEEN_WORDS,
) -> AttributeProbe:
    """Pre-train ``encoder`` (in place) on ``num_captions`` captions of the training styles (seeds 0, 1, ... of the
    "train" split) so that every caption attribute can be read from its output tokens by one attention query.

    Returns the probe (queries and heads) it was trained with, for measuring; the encoder is what is kept.
    ``threads`` sets torch's CPU threads for the run (1: the work is small, and results do not depend on the core
    count)."""
    data = caption_set(TRAIN_STYLES, range(num_captions // len(TRAIN_STYLES)))
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return fit_probe(encoder, tokenizer, data, steps, seed, True, batch_size, lr, max_length, unseen_words)
    finally:
        torch.set_num_threads(previous)


@torch.no_grad()
def attribute_accuracy(
    encoder, probe: AttributeProbe, tokenizer, data: CaptionSet, max_length: int = 48
) -> dict[str, tuple[float, int]]:
    """Per attribute: (accuracy, number of captions scored). Captions whose label the probe has no class for
    (e.g. a held-out wall colour) are not scored; ``nan`` where none is left."""
    input_ids, mask = tokenize(tokenizer, data.captions, max_length)
    logits = probe(encode(encoder.eval(), input_ids), mask)
    targets = _targets(probe.classes, data)
    out = {}
    for i, name in enumerate(probe.classes):
        scored = targets[:, i] != _IGNORE
        hits = (logits[i].argmax(-1) == targets[:, i])[scored]
        out[name] = (hits.float().mean().item() if len(hits) else float("nan"), int(scored.sum()))
    return out


def majority_rate(train: CaptionSet, test: CaptionSet) -> dict[str, float]:
    """Chance level per attribute: accuracy of always answering the training set's most common label, on the test
    captions whose label occurs in training (those :func:`attribute_accuracy` scores)."""
    rates = {}
    for name, labels in test.labels.items():
        known = [label for label in labels if label in set(train.labels[name])]
        common = max(sorted(set(train.labels[name])), key=train.labels[name].count)
        rates[name] = sum(label == common for label in known) / len(known) if known else float("nan")
    return rates


@torch.no_grad()
def shared_word_similarity(encoder, tokenizer, data: CaptionSet, max_length: int = 48) -> float:
    """Mean cosine similarity of the output tokens of the same colour word naming the shirt and naming the wall:
    each plain-wall caption of ``data`` is re-worded so that its wall has the shirt's colour. Near 1: the
    transformer sees the same vector for both and cannot tell which one names the wall."""
    from dynamictrl.puppet.clothing import replace_background

    pairs = [
        (replace_background(caption, f"a plain {color} wall"), color)
        for caption, color, pattern in zip(
            data.captions, data.labels["shirt_color"], data.labels["background_pattern"], strict=True
        )
        if pattern == "plain"
    ]
    ids, _ = tokenize(tokenizer, [caption for caption, _ in pairs], max_length)
    out = encode(encoder, ids)
    sims = []
    for row, (_, color) in enumerate(pairs):
        where = (ids[row] == tokenizer.convert_tokens_to_ids(color)).nonzero().flatten()  # shirt first, wall last
        sims.append(torch.cosine_similarity(out[row, where[0]], out[row, where[-1]], dim=0).item())
    return sum(sims) / len(sims)


def compare_with_random(
    steps: int = 3000,
    seed: int = 0,
    num_captions: int = 4096,
    num_test: int = 256,
    max_length: int = 48,
    long_random_steps: int | None = None,
    unseen_words: float = UNSEEN_WORDS,
) -> str:
    """Markdown tables: per-attribute accuracy on held-out captions of (a) the pre-trained encoder with its own
    queries and heads and (b) the same probe trained for the same steps on the frozen random encoder it started
    from (and, with ``long_random_steps``, for that many steps); the output scale and
    :func:`shared_word_similarity` of both encoders."""
    import copy

    from transformers import T5EncoderModel

    from dynamictrl.puppet.word_tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(caption_corpus())
    torch.manual_seed(seed)
    random_encoder = T5EncoderModel(tiny_t5_config(tokenizer)).eval()
    trained = copy.deepcopy(random_encoder)
    train = caption_set(TRAIN_STYLES, range(num_captions // len(TRAIN_STYLES)))
    tests = {
        "held-out seeds (wide + demo)": caption_set(TRAIN_STYLES, range(10**6, 10**6 + num_test), split="test"),
        "heldout style": caption_set(("heldout",), range(num_test), split="test"),
    }
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = {
            "pretrained": (
                trained,
                fit_probe(
                    trained, tokenizer, train, steps, seed, True, max_length=max_length, unseen_words=unseen_words
                ),
            ),
            "random + probe": (
                random_encoder,
                fit_probe(random_encoder, tokenizer, train, steps, seed, False, max_length=max_length),
            ),
        }
        if long_random_steps:
            probe = fit_probe(random_encoder, tokenizer, train, long_random_steps, seed, False, max_length=max_length)
            runs[f"random + probe, {long_random_steps} steps"] = (random_encoder, probe)
    finally:
        torch.set_num_threads(previous)
    lines = []
    for title, data in tests.items():
        chance = majority_rate(train, data)
        scores = {k: attribute_accuracy(enc, probe, tokenizer, data, max_length) for k, (enc, probe) in runs.items()}
        lines += [f"{title}, {len(data.captions)} captions:", ""]
        lines += [f"| attribute | scored | {' | '.join(runs)} | majority |", "|---" * (len(runs) + 3) + "|"]
        for name in ATTRIBUTES:
            accs = " | ".join(f"{scores[k][name][0]:.3f}" for k in runs)
            lines.append(f"| {name} | {scores['pretrained'][name][1]} | {accs} | {chance[name]:.3f} |")
        lines.append("")
    data = tests["held-out seeds (wide + demo)"]
    ids, mask = tokenize(tokenizer, data.captions, max_length)
    lines += ["| encoder | output std (all tokens) | output std (caption tokens) | shirt/wall word similarity |"]
    lines += ["|---|---|---|---|"]
    for name, encoder in {"pretrained": trained, "random": random_encoder}.items():
        out = encode(encoder, ids)
        sim = shared_word_similarity(encoder, tokenizer, data, max_length)
        lines.append(f"| {name} | {out.std():.3f} | {out[mask].std():.3f} | {sim:.3f} |")
    return "\n".join(lines)
