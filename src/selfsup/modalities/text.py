"""Text: ``.txt``/``.jsonl``/CSV files, folders of ``.txt`` files and the named corpora.

Items are token ids (n, max_length) from a byte-level BPE tokenizer trained on the training
texts and saved with the run (``tokenizer.json``). The default objective is SimCSE on a small
transformer, batch 64 and lr 5e-4 (as suits a transformer trained from scratch; SimCSE's 3e-5
is for fine-tuning a pretrained BERT), and MSF for a pretrained sentence encoder
(:meth:`TextModality.default_method_for`). The raw-input baseline is TF-IDF.

Example:
    >>> TEXT.claims("reviews.jsonl"), TEXT.claims("rotten-tomatoes"), TEXT.claims("x.csv")
    (True, True, False)
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from selfsup.backbones import build_text_backbone
from selfsup.backbones.hf import (
    HFTextBackbone,
    declares_normalize,
    is_hf_backbone,
    is_sentence_encoder,
    load_pretrained,
    model_from_config,
    resolve_folder,
    text_pooling,
)
from selfsup.config import PretrainConfig
from selfsup.data.base import Source
from selfsup.data.hub import (
    frame_note,
    hub_frame,
    hub_layout,
    hub_test_split,
    hub_text_column,
    refuse_labels_table,
)
from selfsup.data.text import (
    POOLED_WINDOWS,
    TEXT_SUFFIXES,
    TextSource,
    has_test_split,
    is_text_spec,
    load_text_file,
    open_text_corpus,
    text_corpus_names,
    texts_of,
    tokenizer_of,
    with_tokenizer,
)
from selfsup.data.tokenizer import TextTokenizer, id_permutation
from selfsup.data.webdataset import read_webdataset_texts, webdataset_media
from selfsup.encoder import Encoder
from selfsup.modalities.base import Modality, folder_media
from selfsup.views.text import TextViews, text_recipe

#: Tokens read per text by a pretrained model's tokenizer unless ``--max-length`` says.
PRETRAINED_MAX_LENGTH = 128
#: The largest batch of texts ``embed`` runs (see ``TextModality.embed_batch_size``).
TEXT_EMBED_BATCH = 64
#: The default learning rate of a pretrained text model (SimCSE's, Gao et al. 2021).
PRETRAINED_LR = 3e-5
#: Batch and learning rate of a ``text-bag`` (see ``TextModality.config_defaults``).
BAG_BATCH, BAG_LR = 256, 3e-3
#: The text baseline's dense TF-IDF (its kNN and few-shot protocols) keeps this many most
#: frequent terms, so it fits in memory dense ...
TFIDF_MAX_TERMS = 2048
#: ... and its linear probe reads a sparse TF-IDF of up to this many (:func:`tfidf_sparse`):
#: the terms of ten million texts may be more, and a million keep the probe's weights under
#: 10 MB a class.
TFIDF_SPARSE_TERMS = 1_000_000


#: The options of a text source of its own (texts in a list, WebDataset shards): how it
#: tokenizes, not which columns it reads.
_OWN_OPTIONS = ("tokenizer", "max_length", "vocab_size")


class TextModality(Modality):
    """Text: documents as token ids of the run's own tokenizer."""

    name = "text"
    memory_remedy = "a smaller --max-length or --backbone"
    source_options: ClassVar[frozenset[str]] = frozenset(
        {
            "text_column",
            "label_column",
            "tokenizer",
            "max_length",
            "vocab_size",
            "require_label",
            "id_column",
            "labels",
        }
    )
    normalizes_input = False
    default_method = "simcse"
    default_protocols = ("linear", "knn", "fewshot")
    default_recipe = "text"
    fallback_backbone = "text-transformer"
    views_class = TextViews
    recipe = staticmethod(text_recipe)
    items_are_text = True
    #: Transformers read texts 2.2-2.6x as fast in bf16 on AVX512-BF16 (all-MiniLM-L6-v2: 179
    #: -> 473 texts/s; each embedding within cosine 0.9999 of fp32's, top-10 neighbours 99%
    #: the same); a bag of token vectors is unchanged (its lookups stay fp32).
    embed_precision = "auto"

    def claims(self, spec: str) -> bool:
        return (
            is_text_spec(spec)
            or Path(spec).suffix.lower() in TEXT_SUFFIXES
            or (media := folder_media(spec)) == "text"
            or (media is None and hub_text_column(spec) is not None)  # photos + metadata table
        )

    def claims_by_options(self, data: Any, options: Mapping[str, Any]) -> bool:
        """A text column makes any data text (a CSV is read as text, not as a table)."""
        return options.get("text_column") is not None

    def open(self, spec: str | os.PathLike | Any, options: dict[str, Any]) -> Source:
        """A named corpus, a file or folder of texts, a Hugging Face dataset, a DataFrame,
        or texts in a list (``run.embed(["where is my refund", ...])``, ids their positions).

        Example:
            >>> TEXT.open(["one text", "another"], {"text_column": "body"}).texts
            ['one text', 'another']
        """
        if isinstance(options.get("tokenizer"), (str, os.PathLike)):  # a run folder or its file
            options = {**options, "tokenizer": TextTokenizer.load(options["tokenizer"])}
        if isinstance(spec, (list, tuple)):
            wrong = next((i for i, t in enumerate(spec) if not isinstance(t, str)), None)
            if wrong is not None:
                raise TypeError(
                    f"texts in a list must be strings: item {wrong} "
                    f"({reprlib.repr(spec[wrong])}) is not"
                )
            kept = {k: options[k] for k in _OWN_OPTIONS if k in options}
            return TextSource(list(spec), **kept)
        if isinstance(spec, str) and is_text_spec(spec):
            columns = ("text_column", "label_column", "require_label", "id_column")
            return open_text_corpus(spec, **{k: v for k, v in options.items() if k not in columns})
        if isinstance(spec, pd.DataFrame):
            return load_text_file(spec, **options)
        layout = hub_layout(spec) if isinstance(spec, (str, os.PathLike)) else None
        if layout is not None and layout.media is None:  # a Hugging Face dataset's split
            refuse_labels_table(spec, options)
            frame, label_column = hub_frame(layout)
            found = {"text_column": hub_text_column(spec), "label_column": label_column}
            given = {k: v for k, v in options.items() if k != "labels"}
            source = load_text_file(frame, name=str(spec), **{**found, **given})
            source.index_note = frame_note(layout, frame)
            return source
        path = Path(spec).expanduser()
        if webdataset_media(path) == self.name:
            if options.get("labels") is not None:
                raise ValueError(
                    f"{spec}: WebDataset shards keep their labels in .cls members; --labels "
                    "is for a folder's files"
                )
            own = {k: options[k] for k in _OWN_OPTIONS if k in options}
            return read_webdataset_texts(path, **own)
        if path.exists():
            return load_text_file(path, **options)
        raise FileNotFoundError(
            f"{spec}: no such file or folder, and not a named text corpus "
            f"(known: {', '.join(text_corpus_names())})"
        )

    def official_test(self, spec: str) -> str | None:
        if has_test_split(spec):
            return f"{spec.removesuffix(':train')}:test"
        return hub_test_split(spec)

    def run_source_options(self, run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
        """The run's tokenizer and text column; later data may come without its labels."""
        tokenizer = TextTokenizer.load_if_saved(run_dir)
        if tokenizer is None:
            return {}
        return {
            "tokenizer": tokenizer,
            "text_column": config.get("text_column"),
            "id_column": config.get("id_column"),
            "require_label": False,
        }

    def adopt(self, source: Source, run_dir: Path) -> Source:
        """The documents re-tokenized with the run's tokenizer, so ids mean what they meant."""
        tokenizer = TextTokenizer.load_if_saved(run_dir)
        return source if tokenizer is None else with_tokenizer(source, tokenizer)

    def resume_options(self, run_dir: Path) -> dict[str, Any]:
        tokenizer = TextTokenizer.load_if_saved(run_dir)
        return {} if tokenizer is None else {"tokenizer": tokenizer}

    def save_artifacts(self, source: Source, run_dir: Path) -> None:
        tokenizer_of(source).save(run_dir)  # trained on the training texts

    def default_method_for(self, cfg: PretrainConfig) -> str:
        """SimCSE, as from scratch, for a language model (``--backbone hf:`` BERT as
        pretrained by masked language modelling: the SimCSE paper's start); MSF for a sentence
        encoder (a sentence-transformers folder, such as all-MiniLM-L6-v2), which SimCSE makes
        worse: eight minutes of it took all-MiniLM-L6-v2 from 0.366 to 0.275 on WordNet's
        topics with 1% of the labels, where MSF took it to 0.400 (BENCHMARKS.md, foundation).

        Example:
            >>> import tempfile
            >>> folder = Path(tempfile.mkdtemp())
            >>> TEXT.default_method_for(PretrainConfig(data="-", backbone=f"hf:{folder}"))
            'simcse'
            >>> _ = (folder / "modules.json").write_text("[]")
            >>> TEXT.default_method_for(PretrainConfig(data="-", backbone=f"hf:{folder}"))
            'msf'
        """
        if is_hf_backbone(cfg.backbone):
            try:
                if is_sentence_encoder(resolve_folder(str(cfg.backbone))):
                    return "msf"
            except FileNotFoundError:  # said in one line when the backbone is built
                pass
        return self.default_method

    def default_method_note(self, cfg: PretrainConfig) -> str | None:
        if self.default_method_for(cfg) == self.default_method:
            return None
        return (
            f"{cfg.backbone} is a sentence encoder: msf adapts it (each text pulled towards "
            "its neighbours as the model embeds them); --method simcse would make it worse "
            "(BENCHMARKS.md)"
        )

    def config_defaults(self, cfg: PretrainConfig) -> dict[str, Any]:
        """Batch 64 and AdamW at 5e-4, as suits a small transformer trained from scratch;
        3e-5 for a pretrained model (SimCSE's rate for BERT), which a higher rate would make
        forget what it knows; batch 256 at 3e-3 for a bag of token vectors (``text-bag``:
        Sent2Vec's encoder and the default student), which has no layers to keep stable and
        learns each token from the few texts holding it (at 64 and 5e-4, Sent2Vec's loss on
        a million support tickets stopped falling at 3.3 after 600 steps).

        Example:
            >>> TEXT.config_defaults(PretrainConfig(data="-", method="sent2vec"))
            {'batch_size': 256, 'lr': 0.003}
        """
        backbone = self._backbone(cfg)
        if is_hf_backbone(backbone):
            batch, lr = 64, PRETRAINED_LR
        elif backbone == "text-bag":
            batch, lr = BAG_BATCH, BAG_LR
        else:
            batch, lr = 64, 5e-4
        return {"batch_size": cfg.batch_size or batch, "lr": lr if cfg.lr is None else cfg.lr}

    def student_options(self, cfg: PretrainConfig, teacher: Encoder) -> dict[str, Any]:
        """A ``text-bag`` student as wide as its teacher's token vectors, so it starts from
        them (``Distill``'s ``init_tokens``) rather than from random ones."""
        tokens = getattr(teacher.backbone, "token_embedding", None)
        if self._backbone(cfg) != "text-bag" or not isinstance(tokens, torch.nn.Embedding):
            return {}
        return {"dim": tokens.embedding_dim}

    def _backbone(self, cfg: PretrainConfig) -> str:
        """The backbone the run will train, given or the method's (before the data is read)."""
        return cfg.backbone or self.default_backbone(str(cfg.method), None, cfg)

    def preparation(self, cfg: PretrainConfig, source: Source | None = None) -> str:
        """Token ids need no statistics: the time goes into the tokenizer (a BPE trained on
        64 million characters of them, :func:`~selfsup.data.text.tokenizer_sample`, takes a
        few seconds).

        Example:
            >>> TEXT.preparation(PretrainConfig(data="-")), TEXT.preparation(
            ...     PretrainConfig(data="-", backbone="hf:minilm"))
            ('tokenizer trained on the texts', "the model's tokenizer read")
            >>> TEXT.preparation(PretrainConfig(data="-", method="distill", teacher="hf:m"))
            "the teacher's tokenizer read"
        """
        if cfg.backbone is not None and is_hf_backbone(cfg.backbone):
            return "the model's tokenizer read"
        if cfg.method == "distill" and cfg.teacher:
            return "the teacher's tokenizer read"
        sampled = None if source is None else tokenizer_of(source).trained_on
        if sampled:
            return f"tokenizer trained on {sampled}, spread over them"
        return "tokenizer trained on the texts"

    def preparation_seconds(self, cfg: PretrainConfig, source: Source, seconds: float) -> float:
        """A tokenizer trained while the data was opened (to measure long documents in
        tokens) took its own time, not the encoder's.

        Example:
            >>> tok = TextTokenizer.train(["one two three"] * 5, 300)
            >>> tok.trained_seconds = 12.5
            >>> TEXT.preparation_seconds(PretrainConfig(data="-"), TextSource(["a"],
            ...     tokenizer=tok), 0.1)
            12.5
        """
        trained = tokenizer_of(source).trained_seconds
        if self.preparation(cfg).startswith("tokenizer trained") and trained is not None:
            return max(seconds, trained)
        return seconds

    def training_source(self, source: Source, cfg: PretrainConfig) -> tuple[Source, str | None]:
        """Long documents are trained on whole: when the median document (of up to
        ``SAMPLED_DOCUMENTS`` spread over the data) is longer than one read
        (``--max-length`` less a model's special tokens), pretraining reads every document as
        windows of one read, one after another, instead of its first window (which is a
        twentieth of a 1,200-token contract read 62 tokens at a time). Collections of short
        texts stay one item a text, with a note when some are cut. The other commands keep
        one item a document and embed it as the mean of up to ``POOLED_WINDOWS`` windows
        spread over it (``TextSource.parts``).

        Example:
            >>> tok = TextTokenizer.train(["one two three"] * 5, 300, max_length=2)
            >>> src = TextSource(["one two three", "two one three"], tokenizer=tok)
            >>> cut, note = TEXT.training_source(src, PretrainConfig(data="-"))
            >>> len(cut), note.split(":")[0]
            (4, 'documents of 3 tokens (the median of 2)')
        """
        if not isinstance(source, TextSource) or not source.pooled:
            return source, None
        lengths = source.sampled_tokens()
        size = source.tokenizer.window_tokens
        longer = int((lengths > size).sum())
        if not longer:
            return source, None
        median = int(np.median(lengths))
        if median <= size:
            return source, (
                f"{longer} of {len(lengths)} documents sampled are longer than a read of "
                f"{size} tokens: pretraining reads their first {size} (--max-length to "
                f"change), the other commands the mean of up to {POOLED_WINDOWS} windows "
                "spread over each"
            )
        cut, _ = source.windows()
        return cut, (
            f"documents of {median:,} tokens (the median of {len(lengths)}): trained on "
            f"{len(cut):,} windows of {size} tokens, one after another, not on each "
            f"document's first {size}; embed, evaluate and the tools embed a document as the "
            f"mean of up to {POOLED_WINDOWS} windows spread over it"
        )

    def statistics(self, source: Source) -> tuple[list[float], list[float]]:
        """None: token ids pass unnormalized."""
        return [0.0], [1.0]

    def frozen_encoder(self, name: str) -> tuple[Encoder, Callable[[Path], None]]:
        """The model as it is, with its own tokenizer (saved into the run folder)."""
        folder = resolve_folder(name)
        tokenizer = TextTokenizer.from_pretrained(folder, PRETRAINED_MAX_LENGTH)
        return build_pretrained_text_encoder(name, tokenizer), tokenizer.save

    #: Any number of token ids, up to the model's.
    free_axes: ClassVar[dict[int, str]] = {0: "batch", 1: "tokens"}

    def describe_inputs(
        self,
        spec: dict[str, Any],
        run_dir: Path | None = None,
        config: dict[str, Any] | None = None,
    ) -> str:
        """The token ids an exported text encoder takes, and the code that makes them from
        texts with the shipped ``tokenizer.json`` (renumbered where a pretrained vocabulary's
        padding, unknown and mask tokens are not at 0, 1 and 2, as ``tokenizer_ids.json``
        says).

        Example:
            >>> TEXT.describe_inputs({}).splitlines()[0][:44]
            'int64 token ids (batch, tokens), 0 for paddi'
        """
        tokenizer = TextTokenizer.load_if_saved(run_dir) if run_dir is not None else None
        first = "int64 token ids (batch, tokens), 0 for padding (the attention mask is ids != 0)."
        if tokenizer is None:
            return first
        special = tokenizer.special_ids
        renumber = (
            f"""
    # A pretrained vocabulary, its [PAD], [UNK] and [MASK] ids {special} moved to 0, 1, 2:
    to_model = np.arange(tokenizer.get_vocab_size())
    for slot, model_id in enumerate({special}):
        where = int(np.flatnonzero(to_model == model_id)[0])
        to_model[slot], to_model[where] = to_model[where], to_model[slot]
    ids = np.argsort(to_model)[ids]"""
            if special is not None
            else ""
        )
        pad = special[0] if special is not None else 0
        return f"""{first}

`tokenizer.json` (beside the model) turns texts into them: at most {tokenizer.max_length} \
tokens a text (longer ones are cut; selfsup embeds a long document read whole as the mean \
of up to {POOLED_WINDOWS} windows spread over it), a batch padded to its longest text. With \
the `tokenizers` library:

```python
import numpy as np
from tokenizers import Tokenizer

tokenizer = Tokenizer.from_file("tokenizer.json")  # from this folder

def selfsup_input(texts):
    encoded = tokenizer.encode_batch(list(texts))
    ids = np.full((len(encoded), max([1, *(len(e.ids) for e in encoded)])), {pad})
    for row, e in enumerate(encoded):
        ids[row, : len(e.ids)] = e.ids{renumber}
    return ids.astype(np.int64)
```"""

    def embed_batch_size(self, source: Source, batch_size: int) -> int:
        """At most ``TEXT_EMBED_BATCH``: on a CPU, smaller batches of texts of like length
        embed faster (all-MiniLM-L6-v2 on 1,000 review snippets, 2 cores: 59 texts/s at
        512, 89 at 128, 117 at 32)."""
        return min(batch_size, TEXT_EMBED_BATCH)

    def read_with(self, source: Source, options: dict[str, Any]) -> Source:
        """The documents of ``source`` read with the options' tokenizer, when there is one."""
        tokenizer = options.get("tokenizer")
        return source if tokenizer is None else with_tokenizer(source, tokenizer)

    def backbone_source_options(self, cfg: PretrainConfig) -> dict[str, Any]:
        """The tokenizer the encoder reads: the one of the run ``--init`` starts from; the
        teacher's for ``--method distill`` (the student reads the teacher's ids); a
        pretrained model's own for ``--backbone hf:...``, at ``--max-length`` tokens
        (default ``PRETRAINED_MAX_LENGTH``, at most the model's limit)."""
        length = cfg.max_length or PRETRAINED_MAX_LENGTH
        if cfg.init is not None:
            return {"tokenizer": TextTokenizer.load(cfg.init)}
        teacher = cfg.teacher if cfg.method == "distill" else None
        if teacher is not None and is_hf_backbone(cfg.backbone):
            raise ValueError(
                f"--backbone {cfg.backbone} reads its own tokenizer and the teacher its own; "
                "distill into a built-in backbone (text-bag, text-transformer-small), which "
                "reads the teacher's"
            )
        if teacher is not None and is_hf_backbone(teacher):
            return {"tokenizer": TextTokenizer.from_pretrained(resolve_folder(teacher), length)}
        if teacher is not None:
            return {"tokenizer": TextTokenizer.load(teacher)}
        if is_hf_backbone(cfg.backbone):
            folder = resolve_folder(str(cfg.backbone))
            return {"tokenizer": TextTokenizer.from_pretrained(folder, length)}
        return {}

    def build_named(
        self, name: str, cfg: PretrainConfig, source: Source, mean: list[float], std: list[float]
    ) -> tuple[Encoder, dict[str, Any]]:
        tokenizer = tokenizer_of(source)  # trained on the training texts here
        if is_hf_backbone(name):
            return build_pretrained_text_encoder(name, tokenizer, **cfg.backbone_options), {}
        size = (tokenizer.vocab_size, tokenizer.max_length)
        return build_text_encoder(name, *size, **cfg.backbone_options), {}

    def rebuild_encoder(self, spec: dict[str, Any]) -> Encoder:
        if is_hf_backbone(spec["backbone"]):
            return rebuild_pretrained_text_encoder(spec)
        return build_text_encoder(
            spec["backbone"], spec["vocab_size"], spec["max_length"], **spec["options"]
        )

    def raw_baseline(self, train: Source, test: Source) -> tuple[np.ndarray, np.ndarray]:
        """TF-IDF of the raw documents (see :func:`tfidf_features`)."""
        return tfidf_features(train, test)

    def raw_linear_features(self, train: Source, test: Source) -> tuple[Any, Any]:
        """TF-IDF of every term of the train texts (see :func:`tfidf_sparse`): what a linear
        classifier of texts is given, not the :data:`TFIDF_MAX_TERMS` kept dense for the
        neighbour protocols."""
        return tfidf_sparse(train, test)

    def raw_width(self, source: Source) -> int:
        """At most :data:`TFIDF_MAX_TERMS` TF-IDF values a text."""
        return TFIDF_MAX_TERMS


def tfidf_features(train: Source, test: Source) -> tuple[np.ndarray, np.ndarray]:
    """TF-IDF vectors of the raw documents of two text splits (the text baseline of the
    kNN and few-shot protocols; its linear probe reads :func:`tfidf_sparse`): word unigrams
    and bigrams with sublinear term frequency, the ``TFIDF_MAX_TERMS`` most frequent terms
    of ``train``, fitted on ``train``; dense float32, NaN rows for rows without text (as
    their embeddings are).

    Example:
        >>> from selfsup.data.text import TextSource
        >>> a, b = tfidf_features(TextSource(["good film", "bad film"]), TextSource(["good", None]))
        >>> a.shape, b.shape, bool(np.isnan(b[1]).all())
        ((2, 5), (2, 5), True)
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, max_features=TFIDF_MAX_TERMS, dtype=np.float32
    )
    train_texts, test_texts = texts_of(train), texts_of(test)
    vectorizer.fit([t for t in train_texts if t is not None])
    out = []
    for texts in (train_texts, test_texts):
        absent = np.array([t is None for t in texts])
        rows = vectorizer.transform([t or "" for t in texts]).toarray()
        rows[absent] = np.nan
        out.append(rows)
    return out[0], out[1]


def tfidf_sparse(train: Source, test: Source, most: int = TFIDF_SPARSE_TERMS) -> tuple[Any, Any]:
    """TF-IDF of two text splits as scikit-learn users fit a text classifier on it: word
    unigrams and bigrams with sublinear term frequency, every term of the train texts (up to
    the ``most`` most frequent), fitted on ``train``, rows of unit length; scipy CSR float32
    matrices, an empty row for a row without text. The rare terms are what a linear
    classifier of texts leans on: capped at the :data:`TFIDF_MAX_TERMS` of
    :func:`tfidf_features`, or without the terms of a single train text, its accuracy on
    Rotten Tomatoes fell well below that of all-MiniLM-L6-v2 instead of above it.

    Example:
        >>> from selfsup.data.text import TextSource
        >>> a, b = tfidf_sparse(TextSource(["good film", "bad film"]), TextSource([None]))
        >>> a.shape, b.shape, b.nnz
        ((2, 5), (1, 5), 0)
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, max_features=most, dtype=np.float32
    )
    train_texts, test_texts = texts_of(train), texts_of(test)
    vectorizer.fit([t for t in train_texts if t is not None])
    return tuple(
        vectorizer.transform([t or "" for t in texts]) for texts in (train_texts, test_texts)
    )


def build_text_encoder(backbone: str, vocab_size: int, max_length: int, **options: Any) -> Encoder:
    """A text encoder (``text-transformer``, ``bert`` or ``text-bag``) for token ids of a
    tokenizer with ``vocab_size`` tokens and at most ``max_length`` tokens per text.

    Example:
        >>> import torch
        >>> enc = build_text_encoder("text-transformer", 300, 16, dim=32, depth=1, heads=2)
        >>> enc(torch.tensor([[5, 6, 0], [7, 0, 0]])).shape
        torch.Size([2, 32])
    """
    module = build_text_backbone(backbone, vocab_size, max_length, **options)
    spec = {
        "modality": "text",
        "backbone": backbone,
        "vocab_size": vocab_size,
        "max_length": max_length,
        "options": options,
    }
    return TEXT.wrap(module, None, [0.0], [1.0], spec)


def build_pretrained_text_encoder(
    name: str,
    tokenizer: TextTokenizer,
    pooling: str | None = None,
    normalize: bool | None = None,
) -> Encoder:
    """The encoder of a pretrained text model ``hf:PATH_OR_ID`` (weights loaded), reading the
    ids of ``tokenizer`` (the model's own, from ``TextTokenizer.from_pretrained``).

    Args:
        name: ``hf:`` and a folder or model id.
        tokenizer: the model's tokenizer, renumbered.
        pooling: ``mean``, ``cls`` or ``pooler``; by default what a sentence-transformers
            folder declares, else ``mean``.
        normalize: unit-length embeddings; by default when a sentence-transformers folder
            declares a ``Normalize`` module.

    Raises:
        ValueError: ``tokenizer`` is not a pretrained model's.
    """
    if tokenizer.to_model is None or tokenizer.special_ids is None:
        raise ValueError(f"{name}: the texts must be read with the model's own tokenizer")
    model = load_pretrained(name)
    if model.kind != "text":
        raise ValueError(f"{name}: an {model.kind} model, not a text encoder")
    pooling = pooling or text_pooling(model.folder)
    if normalize is None:
        normalize = declares_normalize(model.folder)
    to_model = torch.from_numpy(tokenizer.to_model)
    module = HFTextBackbone(model.module, to_model, pooling, tokenizer.max_length, normalize)
    spec = {
        "modality": "text",
        "backbone": name,
        "vocab_size": tokenizer.vocab_size,
        "max_length": tokenizer.max_length,
        "special_ids": list(tokenizer.special_ids),
        "options": {"pooling": pooling, "normalize": normalize},
        "pretrained": {"source": model.source, "sha256": model.sha256, "config": model.config},
    }
    return TEXT.wrap(module, None, [0.0], [1.0], spec)


def rebuild_pretrained_text_encoder(spec: dict[str, Any]) -> Encoder:
    """A pretrained text encoder as ``encoder.json``'s ``spec`` describes it, with random
    weights (a run's ``encoder.safetensors`` holds its own); the original folder is not read."""
    model = model_from_config(spec["pretrained"]["config"])
    to_model = torch.from_numpy(id_permutation(int(spec["vocab_size"]), spec["special_ids"]))
    options = spec["options"]
    module = HFTextBackbone(
        model, to_model, options["pooling"], int(spec["max_length"]), options["normalize"]
    )
    return TEXT.wrap(module, None, [0.0], [1.0], dict(spec))


TEXT = TextModality()
