"""A word-level tokenizer for small closed-vocabulary models (the embedded puppet-world model).

Byte-level tokenizers need no files but turn a 150-character caption into 150 tokens, which would dominate a tiny
model's attention. A word-level vocabulary built from the training captions gives ~30 tokens per caption. It is a
standard ``PreTrainedTokenizerFast`` (``tokenizer.json``), so pipelines save and load it offline like any other
tokenizer. Unknown words map to ``<unk>``; text is lower-cased and split on whitespace and punctuation.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # T5's order: pad 0, eos 1, unk 2


def _pre_tokenizer():
    return pre_tokenizers.Whitespace()


def words_of(texts: Iterable[str]) -> list[str]:
    """The sorted set of lower-cased words and punctuation marks in ``texts``."""
    normalizer, splitter = normalizers.Lowercase(), _pre_tokenizer()
    words = set()
    for text in texts:
        words.update(piece for piece, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    return sorted(words)


def build_word_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is every word of ``texts``; each sequence ends with ``</s>``."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for word in words_of(texts):
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = _pre_tokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )
