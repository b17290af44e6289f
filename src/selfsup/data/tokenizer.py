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

A pretrained model's own tokenizer (``TextTokenizer.from_pretrained``) keeps its vocabulary,
renumbered so that its padding, unknown and mask tokens sit at ids 0, 1 and 2 too (three
swaps, see :func:`id_permutation`); the model's backbone maps the ids back. The model's ids of
those three tokens are saved beside ``tokenizer.json`` in ``tokenizer_ids.json``.

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
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from selfsup.core.files import atomic_path, read_json_object, write_json

TOKENIZER_FILE = "tokenizer.json"
#: The model's ids of the padding, unknown and mask tokens of a pretrained tokenizer.
SPECIAL_IDS_FILE = "tokenizer_ids.json"
#: The special tokens, at ids 0, 1, 2.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[MASK]")
PAD_ID, UNK_ID, MASK_ID = 0, 1, 2
DEFAULT_VOCAB_SIZE = 8000
DEFAULT_MAX_LENGTH = 64


def id_permutation(size: int, special_ids: Sequence[int]) -> np.ndarray:
    """The model's id of each selfsup id: the identity, with the model's padding, unknown and
    mask ids swapped into places 0, 1 and 2.

    Example:
        >>> id_permutation(6, (0, 4, 5)).tolist()  # BERT-like: [PAD] 0, [UNK] 4, [MASK] 5
        [0, 4, 5, 3, 1, 2]
    """
    to_model = np.arange(size, dtype=np.int64)
    for slot, model_id in enumerate(special_ids):
        if not 0 <= model_id < size:
            raise ValueError(f"special token id {model_id} outside the vocabulary of {size}")
        where = int(np.flatnonzero(to_model == model_id)[0])
        to_model[slot], to_model[where] = to_model[where], to_model[slot]
    return to_model


class TextTokenizer:
    """Byte-level BPE with ``[PAD]`` = 0, ``[UNK]`` = 1, ``[MASK]`` = 2, or a pretrained
    model's tokenizer renumbered to the same (see the module).

    Args:
        tokenizer: a trained HF ``tokenizers.Tokenizer`` with those special tokens (or a
            pretrained one, with ``special_ids``).
        max_length: the most tokens kept per text; longer texts are truncated.
        special_ids: a pretrained tokenizer's own ids of its padding, unknown and mask
            tokens; None for selfsup's own BPE.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        max_length: int = DEFAULT_MAX_LENGTH,
        special_ids: Sequence[int] | None = None,
    ) -> None:
        if special_ids is None:
            for token_id, token in enumerate(SPECIAL_TOKENS):
                if tokenizer.token_to_id(token) != token_id:
                    raise ValueError(f"the tokenizer must have {token} at id {token_id}")
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        self.tokenizer = tokenizer
        #: How long learning the merges took, for a tokenizer trained here (else None).
        self.trained_seconds: float | None = None
        #: Of a tokenizer trained on a sample of the texts, which ("40,000 of the 2,000,000
        #: texts"); else None.
        self.trained_on: str | None = None
        self.max_length = int(max_length)
        self.special_ids = None if special_ids is None else tuple(int(i) for i in special_ids)
        self.to_model: np.ndarray | None = None
        self._from_model: np.ndarray | None = None
        self._whole: Tokenizer | None = None
        if self.special_ids is not None:
            self.to_model = id_permutation(self.vocab_size, self.special_ids)
            self._from_model = np.argsort(self.to_model)
        tokenizer.enable_truncation(self.max_length)
        tokenizer.no_padding()

    @classmethod
    def from_pretrained(
        cls, folder: str | os.PathLike, max_length: int = DEFAULT_MAX_LENGTH
    ) -> TextTokenizer:
        """The tokenizer of a Hugging Face model folder (its fast tokenizer, converted by
        transformers when the folder has only a vocabulary file), renumbered (see the module).

        Raises:
            ValueError: the tokenizer has no padding token.
        """
        from transformers import AutoTokenizer

        pretrained = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        if not getattr(pretrained, "is_fast", False):
            raise ValueError(f"{folder}: no fast tokenizer (tokenizer.json) could be made")
        pad = pretrained.pad_token_id
        if pad is None:
            raise ValueError(f"{folder}: the tokenizer has no padding token")
        unk = pretrained.unk_token_id if pretrained.unk_token_id is not None else pad
        mask = pretrained.mask_token_id if pretrained.mask_token_id is not None else unk
        if len({pad, unk, mask}) < 3:
            raise ValueError(
                f"{folder}: the tokenizer needs distinct padding, unknown and mask tokens "
                f"(ids {pad}, {unk}, {mask})"
            )
        backend = Tokenizer.from_str(pretrained.backend_tokenizer.to_str())
        limit = int(getattr(pretrained, "model_max_length", max_length) or max_length)
        return cls(backend, min(max_length, limit), (pad, unk, mask))

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
        started = time.perf_counter()
        tokenizer.train_from_iterator(texts, trainer)
        trained = cls(tokenizer, max_length)
        trained.trained_seconds = time.perf_counter() - started
        return trained

    @property
    def window_tokens(self) -> int:
        """The tokens of a text one read holds: ``max_length`` less the special tokens the
        tokenizer adds around every text (a BERT model's ``[CLS]`` and ``[SEP]``).

        Example:
            >>> TextTokenizer.train(["a b"] * 5, vocab_size=270, max_length=16).window_tokens
            16
        """
        return max(1, self.max_length - self.tokenizer.num_special_tokens_to_add(False))

    def cut_windows(self, texts: Sequence[str]) -> list[list[tuple[int, int, np.ndarray | None]]]:
        """Each text cut into consecutive windows of :attr:`window_tokens` tokens: their
        character spans ``(start, end)`` (the first starts at 0, the last ends with the
        text) and their token ids as one read gives them (special tokens included, before
        :meth:`pad`), so that no window is tokenized again to be read. A text of fewer
        bytes than a window has tokens is one window, not tokenized here (None).

        The windows are the tokenizer's own overflow of its truncation: a text is tokenized
        once, a few MB at a time (a 2 MB file is 0.8 million tokens, about 2 s; 1.1 to 1.3
        times as long as tokenizing it whole, and no window is tokenized again: 811,153
        windows of 200,000 documents were cut in 57 s and read in 1, where cutting took 44
        and reading 51; their source grew 1,174 MB where it grew 896: the ids are kept as
        int32). Its windows after the first begin with the space before their first word,
        as that token has it in the text (re-encoding the window's text, as was done, gave
        that space a token of its own and cut the window's last token).

        Example:
            >>> tok = TextTokenizer.train(["one two three four five six"] * 5, 300, max_length=3)
            >>> text = "one two three four five six two"
            >>> cut = tok.cut_windows([text, "on", ""])
            >>> [text[a:b] for a, b, _ in cut[0]]
            ['one two three', ' four five six', ' two']
            >>> [tok.tokens(ids) for _, _, ids in cut[0]][1], cut[1:]
            ([' four', ' five', ' six'], [[(0, 2, None)], [(0, 0, None)]])
        """
        size = self.window_tokens
        out: list[list[tuple[int, int, np.ndarray | None]]] = [[(0, len(t), None)] for t in texts]
        # Every token covers at least one byte of the text (and the space put in front).
        long = [i for i, t in enumerate(texts) if len(t.encode("utf-8")) + 1 > size]
        for block in _blocks_of(long, [len(texts[i]) for i in long], WINDOW_BLOCK_CHARS):
            encoded = self.tokenizer.encode_batch([texts[i] for i in block])
            for i, e in zip(block, encoded, strict=True):
                parts = [e, *e.overflowing]
                starts = [0]
                for part in parts[1:]:
                    first = part.special_tokens_mask.index(0)  # its first token of the text
                    starts.append(part.offsets[first][0])
                ends = [*starts[1:], len(texts[i])]
                out[i] = [
                    (a, b, np.asarray(part.ids, dtype=np.int32))
                    for a, b, part in zip(starts, ends, parts, strict=True)
                ]
        return out

    def lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's length in tokens, uncut and without special tokens.

        Example:
            >>> tok = TextTokenizer.train(["one two three"] * 5, 300, max_length=2)
            >>> tok.lengths(["one two three", ""]).tolist()
            [3, 0]
        """
        encoded = self._untruncated().encode_batch(list(texts), add_special_tokens=False)
        return np.array([len(e.ids) for e in encoded], dtype=np.int64)

    def _untruncated(self) -> Tokenizer:
        """A copy of the tokenizer that keeps every token of a text (made once: a pretrained
        model's vocabulary takes 20-30 ms to copy)."""
        if self._whole is None:
            self._whole = Tokenizer.from_str(self.tokenizer.to_str())
            self._whole.no_truncation()
        return self._whole

    @property
    def vocab_size(self) -> int:
        """Tokens in the vocabulary, special and added tokens included."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def _model_ids(self, ids: Sequence[int] | np.ndarray) -> list[int]:
        ids = [int(i) for i in ids]
        return ids if self.to_model is None else [int(self.to_model[i]) for i in ids]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids ``(n, L)`` int64, padded with 0 to the longest text (L <= max_length,
        at least 1).

        Example:
            >>> tok = TextTokenizer.train(["hello world"] * 10, vocab_size=270)
            >>> tok.encode(["", "hello"]).tolist()[0]
            [0]
        """
        return self.pad([e.ids for e in self.tokenizer.encode_batch(list(texts))])

    def pad(self, rows: Sequence[Sequence[int] | np.ndarray]) -> np.ndarray:
        """Rows of token ids as the tokenizer gives them (:meth:`cut_windows`) as
        :meth:`encode` returns them: ``(n, L)`` int64, padded with 0 to the longest.

        Example:
            >>> tok = TextTokenizer.train(["hello world"] * 10, vocab_size=270)
            >>> tok.pad([[5, 6], [7]]).tolist()
            [[5, 6], [7, 0]]
        """
        width = max([1, *(len(r) for r in rows)])
        # A pretrained vocabulary is padded with its own padding id, renumbered to 0 below.
        pad = PAD_ID if self.special_ids is None else self.special_ids[0]
        ids = np.full((len(rows), width), pad, dtype=np.int64)
        for row, r in enumerate(rows):
            ids[row, : len(r)] = r
        return ids if self._from_model is None else self._from_model[ids]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The text of one row of ids; special tokens (padding, masks) are left out.

        Example:
            >>> tok = TextTokenizer.train(["Hello there"] * 10, vocab_size=270, lowercase=False)
            >>> tok.decode(tok.encode(["Hello there"])[0])
            'Hello there'
        """
        text = self.tokenizer.decode(self._model_ids(ids), skip_special_tokens=True)
        if self.special_ids is not None:
            return text
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
        special = set(SPECIAL_TOKENS)
        if self.special_ids is not None:  # [CLS], [SEP]... too
            added = self.tokenizer.get_added_tokens_decoder().values()
            special = {t.content for t in added if t.special}
            special |= {self.tokenizer.id_to_token(i) for i in self.special_ids}
        for i in self._model_ids(ids):
            token = self.tokenizer.id_to_token(i)
            if token in special or token is None:
                out.append(token or "[UNK]")
            else:
                out.append(self.tokenizer.decode([i]))
        return out

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` into ``folder`` (atomically)."""
        with atomic_path(Path(folder) / TOKENIZER_FILE) as tmp:
            self.tokenizer.save(str(tmp))
        if self.special_ids is not None:
            pad, unk, mask = self.special_ids
            write_json(Path(folder) / SPECIAL_IDS_FILE, {"pad": pad, "unk": unk, "mask": mask})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> TextTokenizer:
        """Read ``tokenizer.json`` from a run folder (or the file itself). A file read before
        and unchanged since (same size and modification time, its special ids' file too)
        gives the tokenizer read then, which is never modified: parsing a pretrained model's
        vocabulary takes 20-30 ms, which every ``Run.embed`` of a few texts paid.

        Example:
            >>> import tempfile
            >>> folder = tempfile.mkdtemp()
            >>> TextTokenizer.train(["a b"] * 5, vocab_size=270).save(folder)
            >>> TextTokenizer.load(folder) is TextTokenizer.load(folder)
            True
        """
        path = Path(folder)
        path = path / TOKENIZER_FILE if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer here (is this a text run's folder?)")
        special = path.with_name(SPECIAL_IDS_FILE)
        key = (str(path.resolve()), *_file_state(path), *_file_state(special))
        if key not in _LOADED:
            if len(_LOADED) >= LOADED_TOKENIZERS:
                _LOADED.pop(next(iter(_LOADED)))  # the oldest
            _LOADED[key] = cls._read(path, special)
        return _LOADED[key]

    @classmethod
    def _read(cls, path: Path, special: Path) -> TextTokenizer:
        tokenizer = Tokenizer.from_file(str(path))
        truncation = tokenizer.truncation or {}
        special_ids = None
        if special.is_file():
            saved = read_json_object(special)
            special_ids = [saved.get(key) for key in ("pad", "unk", "mask")]
            if not all(type(i) is int for i in special_ids):
                raise ValueError(f"{special}: expected integer ids pad, unk and mask")
        length = int(truncation.get("max_length", DEFAULT_MAX_LENGTH))
        return cls(tokenizer, length, special_ids)

    @classmethod
    def load_if_saved(cls, folder: str | os.PathLike) -> TextTokenizer | None:
        """The tokenizer saved in a run folder, or None when the run is not a text run."""
        return cls.load(folder) if (Path(folder) / TOKENIZER_FILE).exists() else None


#: Tokenizers read from files and kept (:meth:`TextTokenizer.load`), by path and file state.
LOADED_TOKENIZERS = 8
_LOADED: dict[tuple, TextTokenizer] = {}


def _file_state(path: Path) -> tuple[int, int]:
    """(size, modification time in ns) of ``path``; (-1, -1) where it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)


#: Characters of long texts tokenized at once when they are cut into windows.
WINDOW_BLOCK_CHARS = 8_000_000


def _blocks_of(rows: list[int], sizes: list[int], limit: int) -> Iterable[list[int]]:
    """``rows`` in consecutive blocks whose ``sizes`` add up to at most ``limit`` (a row
    larger than it alone).

    Example:
        >>> list(_blocks_of([4, 7, 9], [5, 5, 20], 10))
        [[4, 7], [9]]
    """
    block: list[int] = []
    total = 0
    for row, size in zip(rows, sizes, strict=True):
        if block and total + size > limit:
            yield block
            block, total = [], 0
        block.append(row)
        total += size
    if block:
        yield block
