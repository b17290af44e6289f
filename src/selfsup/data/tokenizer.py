"""A byte-level BPE tokenizer trained on the user's own corpus, saved with the run.

The tokenizer is HF ``tokenizers``' BPE over bytes (as GPT-2's, Radford et al. 2019), so every
text encodes without unknown tokens, whatever its language or symbols. Each text gets one
leading space before it is split, so a word is the same token at the start of a text and in
its middle, and ``decode`` removes that space again: ``decode(encode(text)) == text`` for any
text that fits in ``max_length`` tokens (lowercased when ``lowercase`` is on).

Ids 0, 1 and 2 are the special tokens ``[PAD]``, ``[UNK]`` and ``[MASK]``; a batch is padded
with 0 to its longest text, so the attention mask is ``ids != 0``. The tokenizer is saved as
``tokenizer.json`` in the run folder (HF's own format, the length limit as its truncation) and
reloaded to encode later data exactly as the training data was.

Example:
    >>> tok = TextTokenizer.train(["a good film", "a bad film"] * 20, vocab_size=300)
    >>> ids = tok.encode(["a good film", "bad"])
    >>> ids.shape, ids[1, -1]
    ((2, 3), np.int64(0))
    >>> tok.decode(ids[0])
    'a good film'
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from selfsup.core.files import atomic_path

TOKENIZER_FILE = "tokenizer.json"
#: The special tokens, at ids 0, 1, 2.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[MASK]")
PAD_ID, UNK_ID, MASK_ID = 0, 1, 2
DEFAULT_VOCAB_SIZE = 8000
DEFAULT_MAX_LENGTH = 64


class TextTokenizer:
    """Byte-level BPE with ``[PAD]`` = 0, ``[UNK]`` = 1, ``[MASK]`` = 2 (see the module).

    Args:
        tokenizer: a trained HF ``tokenizers.Tokenizer`` with those special tokens.
        max_length: the most tokens kept per text; longer texts are truncated.
    """

    def __init__(self, tokenizer: Tokenizer, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        for token_id, token in enumerate(SPECIAL_TOKENS):
            if tokenizer.token_to_id(token) != token_id:
                raise ValueError(f"the tokenizer must have {token} at id {token_id}")
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        tokenizer.enable_truncation(self.max_length)
        tokenizer.no_padding()

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int = DEFAULT_VOCAB_SIZE,
        max_length: int = DEFAULT_MAX_LENGTH,
        lowercase: bool = True,
        min_frequency: int = 2,
    ) -> TextTokenizer:
        """Learn BPE merges on ``texts`` until the vocabulary holds ``vocab_size`` tokens
        (fewer when the corpus has no more pairs seen ``min_frequency`` times).

        Example:
            >>> TextTokenizer.train(["abc abc"] * 5, vocab_size=270).vocab_size <= 270
            True
        """
        if vocab_size <= len(SPECIAL_TOKENS) + 256:
            raise ValueError("vocab_size must exceed 259 (3 special tokens and 256 bytes)")
        tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
        steps = [normalizers.Lowercase()] if lowercase else []
        tokenizer.normalizer = normalizers.Sequence([*steps, normalizers.Prepend(" ")])
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer)
        return cls(tokenizer, max_length)

    @property
    def vocab_size(self) -> int:
        """Tokens in the vocabulary, special tokens included."""
        return self.tokenizer.get_vocab_size()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids ``(n, L)`` int64, padded with 0 to the longest text (L <= max_length,
        at least 1).

        Example:
            >>> tok = TextTokenizer.train(["hello world"] * 10, vocab_size=270)
            >>> tok.encode(["", "hello"]).tolist()[0]
            [0]
        """
        encoded = self.tokenizer.encode_batch(list(texts))
        width = max([1, *(len(e.ids) for e in encoded)])
        ids = np.zeros((len(encoded), width), dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e.ids)] = e.ids
        return ids

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The text of one row of ids; special tokens (padding, masks) are left out.

        Example:
            >>> tok = TextTokenizer.train(["Hello there"] * 10, vocab_size=270, lowercase=False)
            >>> tok.decode(tok.encode(["Hello there"])[0])
            'Hello there'
        """
        text = self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)
        return text[1:] if text.startswith(" ") else text  # the space encode put in front

    def tokens(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """The readable text of each id, one string per id (``[PAD]``, ``[MASK]`` for the
        special tokens), so that per-token outputs can be labelled position by position. A
        byte of a character split over several tokens reads as ``\\ufffd``.

        Example:
            >>> tok = TextTokenizer.train(["good film"] * 10, vocab_size=270)
            >>> tok.tokens(tok.encode(["good film"])[0])
            [' good', ' film']
        """
        out = []
        for i in ids:
            token = self.tokenizer.id_to_token(int(i))
            if token in SPECIAL_TOKENS or token is None:
                out.append(token or "[UNK]")
            else:
                out.append(self.tokenizer.decode([int(i)]))
        return out

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` into ``folder`` (atomically)."""
        with atomic_path(Path(folder) / TOKENIZER_FILE) as tmp:
            self.tokenizer.save(str(tmp))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> TextTokenizer:
        """Read ``tokenizer.json`` from a run folder (or the file itself)."""
        path = Path(folder)
        path = path / TOKENIZER_FILE if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer here (is this a text run's folder?)")
        tokenizer = Tokenizer.from_file(str(path))
        truncation = tokenizer.truncation or {}
        return cls(tokenizer, int(truncation.get("max_length", DEFAULT_MAX_LENGTH)))

    @classmethod
    def load_if_saved(cls, folder: str | os.PathLike) -> TextTokenizer | None:
        """The tokenizer saved in a run folder, or None when the run is not a text run."""
        return cls.load(folder) if (Path(folder) / TOKENIZER_FILE).exists() else None
