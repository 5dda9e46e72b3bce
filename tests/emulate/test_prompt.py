"""Prompt token counts: characters / 4, a token-id list, or a tokenizer (a word-level one built here,
whose count is the number of whitespace-separated words: the oracle)."""

import pytest

from servopt.emulate.prompt import chars_over_four, load_tokenizer_counter, prompt_tokens
from servopt.errors import ServoptError

tokenizers = pytest.importorskip("tokenizers")


def _word_tokenizer(path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "[CLS]": 1, "the": 2, "cat": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # A template that adds a special token: counts must leave it out, as clients count prompts.
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", 1)])
    tok.save(str(path))
    return path


def test_characters_over_four_and_token_ids():
    assert prompt_tokens({"prompt": "x" * 401}, "completions") == 101
    assert prompt_tokens({"prompt": [7, 8, 9]}, "completions") == 3
    assert prompt_tokens({"prompt": ["abcdefgh"]}, "completions") == 2
    chat = {"messages": [{"role": "system", "content": "x" * 8}, {"role": "user", "content": "y" * 12}]}
    assert prompt_tokens(chat, "chat") == 5
    assert prompt_tokens({"prompt": ""}, "completions") == 1
    assert chars_over_four("abcde") == 2


@pytest.mark.parametrize("as_folder", [False, True])
def test_a_tokenizer_counts_words_without_special_tokens(tmp_path, as_folder):
    path = _word_tokenizer(tmp_path / "tokenizer.json")
    count = load_tokenizer_counter(str(tmp_path if as_folder else path))
    words = "the cat sat on the mat"  # unknown words are one [UNK] token each
    assert count(words) == 6
    assert prompt_tokens({"prompt": words * 3}, "completions", count) == len((words * 3).split())
    parts = [{"type": "text", "text": "the cat"}, {"type": "text", "text": "cat"}]
    chat = {"messages": [{"role": "system", "content": "the the"}, {"role": "user", "content": parts}]}
    assert prompt_tokens(chat, "chat", count) == 5
    assert prompt_tokens({"prompt": [1, 2]}, "completions", count) == 2


def test_a_tokenizer_file_s_truncation_and_padding_do_not_cut_the_count(tmp_path):
    from tokenizers import Tokenizer

    path = _word_tokenizer(tmp_path / "tokenizer.json")
    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length=4)  # as a sentence encoder's file ships it (128)
    tok.enable_padding(length=16)
    tok.save(str(path))
    assert load_tokenizer_counter(str(path))("the cat " * 10) == 20


def test_a_tokenizer_that_is_not_there_or_not_one_is_one_message(tmp_path):
    with pytest.raises(ServoptError, match="tokenizer"):
        load_tokenizer_counter("no-such-org/no-such-tokenizer-xyz")
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{}")
    with pytest.raises(ServoptError, match="not a tokenizers JSON"):
        load_tokenizer_counter(str(bad))
