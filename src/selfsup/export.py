"""Shipping a run's encoder: ONNX, TorchScript, safetensors or a Hugging Face folder.

Every export is a folder holding the encoder *with its input normalization* (images in
[0, 1] in, embeddings out; text: token ids of the tokenizer shipped beside it in, embeddings
out; tables: encoded rows in), the tokenizer files for text or the column encoding for
tables (``preprocess.json``), and a model card (``README.md``: data, method, training
time, metrics). Before it is written out for good, the exported encoder is run on real items
(the run's training data unless ``data`` says otherwise) and compared with the run's own
encoder in PyTorch, fp32: the largest absolute difference must be at most ``PARITY``
(1e-4), else the export fails with the figure. ONNX exports are timed in onnxruntime next to
eager PyTorch on the same batch.

- ``onnx``: ``encoder.onnx`` (``torch.onnx.export``, the batch dimension and, for text and
  series, the sequence dimension dynamic), input ``input``, output ``embeddings``
  (``embedding`` names the token-embedding nodes of text graphs);
- ``torchscript``: ``encoder.pt`` (``torch.jit.trace``; ``torch.jit.load`` reads it);
- ``safetensors``: ``encoder.safetensors`` + ``encoder.json``, what ``selfsup.load`` reads;
- ``hf``: for ``hf:`` backbones, a folder ``transformers.AutoModel.from_pretrained`` loads
  (with its tokenizer, and for text the sentence-transformers pooling files, so
  ``SentenceTransformer(folder)`` gives the same embeddings; for images
  ``preprocessor_config.json`` with the normalization and size).

Example:
    >>> import tempfile
    >>> from selfsup.run import pretrain
    >>> run = pretrain("digits", epochs=1, out=tempfile.mkdtemp(), show_progress=False,
    ...                backbone_options={"width": 8}, monitor_items=0)
    >>> result = export_run(run, "safetensors", Path(tempfile.mkdtemp()) / "out")
    >>> result.max_abs_diff <= PARITY, sorted(p.name for p in result.path.iterdir())[:2]
    (True, ['README.md', 'encoder.json'])
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from selfsup.backbones.hf import HF_BACKBONES, HFAudioBackbone, HFImageBackbone, HFTextBackbone
from selfsup.console import training_in_words
from selfsup.core.files import write_json, write_text
from selfsup.core.progress import activity
from selfsup.data.tabular import PREPROCESSOR_FILE
from selfsup.data.tokenizer import SPECIAL_IDS_FILE, TOKENIZER_FILE
from selfsup.encoder import Encoder
from selfsup.modalities import get_modality

if TYPE_CHECKING:
    from selfsup.run import Run

FORMATS = ("onnx", "torchscript", "safetensors", "hf")
#: The largest absolute difference allowed between an export and the run's encoder (fp32).
PARITY = 1e-4
#: Items the parity check and the timing run on.
CHECK_ITEMS = 64


@dataclass
class ExportResult:
    """What an export wrote and how it compares with the run's encoder.

    Attributes:
        path: the export folder.
        format: one of ``FORMATS``.
        items: the items compared.
        max_abs_diff: the largest absolute difference of the embeddings.
        data: where the items came from.
        eager_items_per_second: the run's encoder in PyTorch on that batch.
        export_items_per_second: the export (onnxruntime, TorchScript...) on that batch.
    """

    path: Path
    format: str
    items: int
    max_abs_diff: float
    data: str
    eager_items_per_second: float
    export_items_per_second: float | None = None

    def describe(self) -> str:
        """One line for people."""
        speed = f"PyTorch {self.eager_items_per_second:,.0f} items/s"
        if self.export_items_per_second is not None:
            engine = "onnxruntime" if self.format == "onnx" else self.format
            speed = f"{engine} {self.export_items_per_second:,.0f} items/s vs " + speed
        return (
            f"exported {self.format} to {self.path}: max abs difference {self.max_abs_diff:.2e} "
            f"on {self.items} items of {self.data} (limit {PARITY:g}); {speed}"
        )


def check_items(run: Run, data: str | None, items: int = CHECK_ITEMS) -> tuple[torch.Tensor, str]:
    """A batch of real items as the encoder takes them (after ``prepare_input``) and where
    they came from: ``data``, else the run's training data.

    Raises:
        ValueError: no data to check with (the run's data cannot be opened here).
    """
    spec = data or run.config.get("data")
    if not spec:
        raise ValueError("give --data: items to check the export with")
    with activity(f"reading items of {spec} to check the export on"):
        try:  # three months of sensor readings as one item took 24 GB and 5 minutes: killed
            source = run.open_as_trained(spec)
        except (FileNotFoundError, ValueError, TypeError) as err:
            raise ValueError(
                f"cannot open {spec} to check the export with ({err}); give --data"
            ) from None
        modality = get_modality(run.encoder.modality)
        items = min(items, modality.embed_batch_size(source, items))
        batch = source.read_batch(list(range(min(len(source), 4 * items))))
    if len(batch.indices) == 0:
        raise ValueError(f"{spec}: no readable item to check the export with")
    x = batch.items[:items]
    encoder = run.encoder
    x = modality.prepare_input(x, encoder.spec or {})
    return x.contiguous(), str(spec)


def _items_per_second(
    function: Any, x: Any, n: int, repeats: int = 3, seconds: float = 5.0
) -> float:
    """Items per second of ``function`` on the batch ``x`` of ``n`` items, after a warm-up
    call: ``repeats`` calls, or fewer (at least one) once ``seconds`` have passed."""
    function(x)  # warm up
    begun = time.perf_counter()
    done = 0
    while done < repeats and (done == 0 or time.perf_counter() - begun < seconds):
        function(x)
        done += 1
    return n * done / (time.perf_counter() - begun)


def export_run(
    run: Run, fmt: str, out: str | os.PathLike, data: str | None = None, overwrite: bool = False
) -> ExportResult:
    """Export ``run``'s encoder as ``fmt`` into the folder ``out`` (see the module).

    Raises:
        ValueError: an unknown format, ``hf`` for a backbone that is not a transformers
            model, an existing ``out`` without ``overwrite``, or an export that does not
            match the encoder (the figure is in the message; nothing is left at ``out``).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out}: exists and is not empty; give another --out or --overwrite")
    encoder = run.encoder.float().cpu().eval()
    if fmt == "hf" and not isinstance(encoder.backbone, HF_BACKBONES):
        raise ValueError(
            f"--format hf needs a run whose backbone is a transformers model (--backbone hf:...)"
            f"; {run.path} has {(encoder.spec or {}).get('backbone', 'a custom module')}: "
            "export it as onnx, torchscript or safetensors"
        )
    x, source = check_items(run, data)
    with activity(f"embedding and timing {len(x)} items in PyTorch"), torch.no_grad():
        expected = encoder(x).numpy()
        eager = _items_per_second(lambda b: encoder(b), x, len(x))
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with activity(f"writing {fmt}, then embedding and timing {len(x)} items with it"):
            got, speed = write_export(encoder, fmt, x, work, run.path)
        diff = float(np.abs(got - expected).max())
        if not diff <= PARITY:
            raise ValueError(
                f"the {fmt} export differs from the run's encoder by up to {diff:.2e} on "
                f"{len(x)} items of {source} (limit {PARITY:g}); nothing was written"
            )
        result = ExportResult(out, fmt, len(x), diff, source, eager, speed)
        write_text(work / "README.md", model_card(run, result))
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def write_export(
    encoder: Encoder, fmt: str, x: torch.Tensor, folder: Path, run_dir: Path | None = None
) -> tuple[np.ndarray, float]:
    """Write ``encoder`` as ``fmt`` into ``folder`` (with the files of ``run_dir`` that
    turn data into its inputs: ``INPUT_FILES``), read the export back, and return its
    embeddings of ``x`` and its items per second on them.

    Example:
        >>> import tempfile
        >>> from selfsup.modalities.image import build_image_encoder
        >>> enc = build_image_encoder("small-cnn", 1, 8, width=4).eval()
        >>> x = torch.rand(3, 1, 8, 8)
        >>> got, _ = write_export(enc, "torchscript", x, Path(tempfile.mkdtemp()))
        >>> bool(np.abs(got - enc(x).detach().numpy()).max() <= PARITY)
        True
    """
    return _WRITERS[fmt](encoder, x, folder, run_dir)


#: The run's files that turn data into an export's inputs: a text run's tokenizer, a table
#: run's column encoding.
INPUT_FILES = (TOKENIZER_FILE, SPECIAL_IDS_FILE, PREPROCESSOR_FILE)


def _ship_inputs(run_dir: Path | None, folder: Path) -> None:
    """The run's files beside an export that turn data into its inputs (``INPUT_FILES``)."""
    for name in INPUT_FILES:
        if run_dir is not None and (run_dir / name).exists():
            shutil.copy2(run_dir / name, folder / name)


def _example(x: torch.Tensor) -> torch.Tensor:
    """The items an encoder is traced or exported on: two of the checked ones. Tracing all 64
    photos of a ViT-S at 224 px took 7 GB; and an export that fixed its batch where it was
    traced would fail its check on the others, not a user's first batch of another size.

    Example:
        >>> _example(torch.zeros(64, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """
    return x[:2]


def _onnx(
    encoder: Encoder, x: torch.Tensor, folder: Path, run_dir: Path | None
) -> tuple[np.ndarray, float]:
    import onnxruntime

    path = folder / "encoder.onnx"
    axes = dict(get_modality(encoder.modality).free_axes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # TorchScript-based: a second or two where the dynamo exporter takes ten or more
            with _native_output_discarded():  # its whole graph, when an operator fails
                torch.onnx.export(
                    encoder, (_example(x),), str(path), input_names=["input"],
                    output_names=["embeddings"], dynamic_axes={"input": axes}, dynamo=False,
                )  # fmt: skip
        except Exception:  # an operator it cannot export (in-place masks of text models)
            _onnx_dynamo(encoder, _example(x), path)
    _ship_inputs(run_dir, folder)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = x.numpy()

    def infer(b: np.ndarray) -> np.ndarray:
        return session.run(["embeddings"], {"input": b})[0]

    return infer(feed), _items_per_second(infer, feed, len(x))


@contextlib.contextmanager
def _native_output_discarded() -> Iterator[None]:
    """Discard what native code writes to the process's standard output and error meanwhile
    (a second or two): the TorchScript exporter prints its whole graph (hundreds of lines)
    before it raises, whatever its verbosity."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with open(os.devnull, "w") as null:
            for fd in saved:
                os.dup2(null.fileno(), fd)
            yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


def _onnx_dynamo(encoder: Encoder, x: torch.Tensor, path: Path) -> None:
    """``torch.onnx.export`` through ``torch.export``, optimized (the unoptimized graph can
    name two values alike, which onnxruntime refuses)."""
    batch = torch.export.Dim("batch", min=1)
    dims: dict[int, Any] = {0: batch}
    if not x.is_floating_point():
        dims[1] = torch.export.Dim("tokens", min=1, max=int((encoder.spec or {})["max_length"]))
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # one line per torchvision op
    program = torch.onnx.export(
        encoder, (x,), dynamic_shapes=(dims,), input_names=["input"],
        output_names=["embeddings"], dynamo=True, verbose=False, optimize=True,
    )  # fmt: skip
    program.save(str(path))


def _torchscript(
    encoder: Encoder, x: torch.Tensor, folder: Path, run_dir: Path | None
) -> tuple[np.ndarray, float]:
    path = folder / "encoder.pt"
    with torch.no_grad(), warnings.catch_warnings():
        # A check of an input's size is traced as a constant: said with its source line
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(encoder, (_example(x),), strict=False, check_trace=False)
    traced.save(str(path))
    _ship_inputs(run_dir, folder)
    loaded = torch.jit.load(str(path)).eval()
    with torch.no_grad():
        got = loaded(x).numpy()
        speed = _items_per_second(lambda b: loaded(b), x, len(x))
    return got, speed


def _safetensors(
    encoder: Encoder, x: torch.Tensor, folder: Path, run_dir: Path | None
) -> tuple[np.ndarray, float]:
    from selfsup.modalities import load_encoder

    encoder.save(folder)
    _ship_inputs(run_dir, folder)
    again = load_encoder(folder).eval()
    with torch.no_grad():
        return again(x).numpy(), _items_per_second(lambda b: again(b), x, len(x))


def _hf(
    encoder: Encoder, x: torch.Tensor, folder: Path, run_dir: Path | None
) -> tuple[np.ndarray, float]:
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Writing model shards" bars, in a pipe too
    backbone = encoder.backbone
    backbone.model.save_pretrained(folder, safe_serialization=True)
    if isinstance(backbone, HFTextBackbone):
        if run_dir is None:
            raise ValueError("a text model's hf export needs its run folder (the tokenizer)")
        _hf_text_files(run_dir, backbone, folder)
    elif isinstance(backbone, HFAudioBackbone):
        _hf_audio_files(backbone, folder)
    else:
        _hf_image_files(encoder, folder)
    reloaded = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    reloaded.eval()
    if isinstance(backbone, HFTextBackbone):
        head: torch.nn.Module = HFTextBackbone(
            reloaded, backbone.to_model, backbone.pooling, backbone.max_length, backbone.normalize
        )
    elif isinstance(backbone, HFAudioBackbone):
        head = HFAudioBackbone(reloaded, backbone.pooling, backbone.preprocessing)
    else:
        head = HFImageBackbone(reloaded, backbone.pooling, backbone.image_size)
    again = Encoder(
        head, encoder.feature_dim, encoder.mean.flatten().tolist(), encoder.std.flatten().tolist(),
        modality=encoder.modality, stat_dims=get_modality(encoder.modality).stat_dims,
        normalize=encoder.normalizes_input,
    ).eval()  # fmt: skip
    with torch.no_grad():
        return again(x).numpy(), _items_per_second(lambda b: again(b), x, len(x))


def _hf_text_files(run_dir: Path, backbone: HFTextBackbone, folder: Path) -> None:
    """The tokenizer in transformers' layout and sentence-transformers' pooling files."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from selfsup.data.tokenizer import TextTokenizer

    tokenizer = TextTokenizer.load(run_dir)
    pad, unk, mask = tokenizer.special_ids or (0, 1, 2)
    raw = Tokenizer.from_str(tokenizer.tokenizer.to_str())
    raw.no_truncation()
    names = {"pad_token": pad, "unk_token": unk, "mask_token": mask}
    tokens = {key: raw.id_to_token(i) for key, i in names.items()}
    for key, token in (("cls_token", "[CLS]"), ("sep_token", "[SEP]")):
        if raw.token_to_id(token) is not None:
            tokens[key] = token
    PreTrainedTokenizerFast(
        tokenizer_object=raw, model_max_length=backbone.max_length, **tokens
    ).save_pretrained(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
    ]  # fmt: skip
    if backbone.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})  # fmt: skip
        (folder / "2_Normalize").mkdir()
    write_json(folder / "modules.json", modules)
    write_json(folder / "sentence_bert_config.json", {"max_seq_length": backbone.max_length})
    write_json(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": backbone.feature_dim,
            "pooling_mode_cls_token": backbone.pooling == "cls",
            "pooling_mode_mean_tokens": backbone.pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )


def _hf_image_files(encoder: Encoder, folder: Path) -> None:
    """``preprocessor_config.json``: the size and normalization the encoder reads with."""
    spec = encoder.spec or {}
    side = int(spec.get("image_size") or encoder.backbone.image_size)
    write_json(
        folder / "preprocessor_config.json",
        {
            "do_resize": True,
            "size": {"shortest_edge": side},
            "do_center_crop": True,
            "crop_size": {"height": side, "width": side},
            "do_normalize": True,
            "image_mean": encoder.mean.flatten().tolist(),
            "image_std": encoder.std.flatten().tolist(),
            "do_rescale": True,
            "rescale_factor": 1 / 255,
        },
    )


def _hf_audio_files(backbone: HFAudioBackbone, folder: Path) -> None:
    """``preprocessor_config.json``: the model's feature extractor, as the encoder reads."""
    p = backbone.preprocessing
    if backbone.fbank is not None:
        from transformers import ASTFeatureExtractor

        extractor: Any = ASTFeatureExtractor(
            sampling_rate=p.sample_rate, num_mel_bins=p.num_mel_bins, max_length=p.max_length,
            do_normalize=p.do_normalize, mean=p.mean, std=p.std,
        )  # fmt: skip
    else:
        from transformers import Wav2Vec2FeatureExtractor

        extractor = Wav2Vec2FeatureExtractor(
            sampling_rate=p.sample_rate, do_normalize=p.do_normalize
        )
    extractor.save_pretrained(folder)


_WRITERS = {"onnx": _onnx, "torchscript": _torchscript, "safetensors": _safetensors, "hf": _hf}


def model_card(run: Run, result: ExportResult) -> str:
    """The export's ``README.md``: what it is, its data, method, training, metrics and the
    parity check."""
    config, summary = run.config, run.summary
    spec = run.encoder.spec or {}
    pretrained = spec.get("pretrained") or {}
    evaluations = sorted(run.path.glob("evaluation*.json"))
    lines = [
        f"# selfsup encoder: {config.get('method') or 'frozen'} on {config.get('data')}",
        "",
        f"Exported as {result.format} from the run `{run.path}` with `selfsup export`.",
        "",
        "| | |",
        "| --- | --- |",
        f"| modality | {config.get('modality')} |",
        f"| backbone | {spec.get('backbone')} ({spec.get('options') or {}}) |",
        f"| embedding size | {run.encoder.feature_dim} |",
        f"| parameters | {run.encoder.describe()['parameters']:,} |",
        f"| method | {config.get('method')} ({summary.get('method_options') or {}}) |",
        f"| data | {config.get('data')} |",
        f"| training | {training_in_words(summary)}, "
        f"{summary.get('train_seconds', 0.0) / 60:.1f} minutes, "
        f"{summary.get('precision', 'fp32')} |",
    ]
    if pretrained:
        lines.append(
            f"| started from | {pretrained.get('source')} (sha256 {pretrained.get('sha256')}) |"
        )
    lines += [
        f"| parity | max abs difference {result.max_abs_diff:.2e} on {result.items} items of "
        f"{result.data} (limit {PARITY:g}) |",
        "",
        "Inputs: " + _inputs_note(run),
    ]
    if evaluations:
        lines += ["", "## Metrics", ""]
        for path in evaluations:
            lines += [f"`{path.name}`:", "", "```json", path.read_text().strip()[:4000], "```", ""]
    return "\n".join(lines) + "\n"


def _inputs_note(run: Run) -> str:
    """What the exported encoder takes, as its modality says."""
    modality = get_modality(run.encoder.modality)
    return modality.describe_inputs(run.encoder.spec or {}, run.path, run.config)
