"""How many tokens a request's prompt is: the simulated prefill length.

A token-id list counts as its length. Text counts as ``ceil(characters / 4)`` unless a tokenizer
is given (``servopt emulate --tokenizer``): then it is the tokenizer's count of the prompt, or of
the chat messages' contents summed, without special tokens or a chat template. That is how benchmark
clients (AIPerf, GuideLLM) size their synthetic prompts, so with the client's tokenizer the emulator
simulates the prompt length the client asked for; characters / 4 over- or under-counts it by 10-20%
(563 vs 498 tokens on AIPerf's 500-token prompts with a BERT tokenizer).

The tokenizer comes from the ``tokenizers`` library: a ``tokenizer.json`` file, a folder holding
one, or a Hugging Face repo id already in the local cache (nothing is downloaded).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

CHARS_PER_TOKEN = 4


def chars_over_four(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def load_tokenizer_counter(name: str) -> Callable[[str], int]:
    """A text -> token count function from a tokenizer file, folder or cached HF repo id."""
    from servopt.errors import ServoptError

    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ServoptError(
            "tokenizer", name, "needs the tokenizers library (pip install 'servopt[web]')"
        ) from None
    path = Path(name)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(name, "tokenizer.json")
        except ValueError:  # not a repo id either (HFValidationError)
            cached = None
        if not isinstance(cached, str):
            raise ServoptError(
                "tokenizer",
                name,
                "must be a tokenizer.json file, a folder holding one, or a Hugging Face repo id "
                "whose tokenizer.json is in the local cache",
            )
        path = Path(cached)
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # the library raises a bare Exception on a malformed file
        raise ServoptError("tokenizer", str(path), f"is not a tokenizers JSON file ({err})") from None

    # A tokenizer.json may carry a model's truncation (e.g. 128 for a sentence encoder) and padding:
    # the count is of the whole prompt.
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


def prompt_tokens(body: dict, kind: str, count: Callable[[str], int] = chars_over_four) -> int:
    """The prompt's token count (>= 1) of a completions or chat request body."""
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("messages: must be a non-empty list")
        texts = []
        for m in messages:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, list):  # content parts
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            texts.append(str(content or ""))
        # Counted per message, as clients count each message's content when they build it.
        return max(1, sum(count(t) for t in texts if t))
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ValueError("prompt: must be a string or a list of token ids")
    return max(1, count(prompt))
