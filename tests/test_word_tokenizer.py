from transformers import AutoTokenizer

from dynamictrl.puppet.word_tokenizer import build_word_tokenizer, words_of


def test_vocabulary_round_trip_and_unknown_words(tmp_path):
    captions = ["The person is wearing a red shirt.", "The background is a plain blue wall."]
    tokenizer = build_word_tokenizer(captions)
    assert len(tokenizer) == 3 + len(words_of(captions))
    ids = tokenizer(["The RED wall. zebra"], padding="max_length", max_length=8, truncation=True).input_ids[0]
    vocab = tokenizer.get_vocab()
    assert ids[:3] == [vocab["the"], vocab["red"], vocab["wall"]]
    assert ids[3:6] == [vocab["."], tokenizer.unk_token_id, tokenizer.eos_token_id]
    assert ids[6:] == [tokenizer.pad_token_id] * 2
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded("a plain blue wall.").input_ids == tokenizer("a plain blue wall.").input_ids
