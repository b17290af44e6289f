"""Hugging Face datasets of images written as the Hub and ``datasets`` write them (checked
against ``datasets`` 5.2's own ``to_parquet`` and ``save_to_disk`` files), without it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def png(value: int, side: int = 12) -> bytes:
    """A gray PNG whose every pixel is ``value``: which item was read shows in its pixels."""
    out = io.BytesIO()
    Image.fromarray(np.full((side, side + 4), value, np.uint8)).convert("RGB").save(out, "PNG")
    return out.getvalue()


def features(names: list[str] | None = ("cat", "dog")) -> dict:
    """The ``datasets`` features of an ``Image`` column and a ``ClassLabel`` column."""
    found = {"image": {"_type": "Image"}}
    if names is not None:
        found["label"] = {"names": list(names), "_type": "ClassLabel"}
    return found


def table(rows: list[dict], names: list[str] | None = ("cat", "dog")) -> pa.Table:
    """Rows ``{"image": {"bytes", "path"}, "label": code}`` as a table with the features in
    its schema's metadata, as ``datasets`` writes it."""
    fields = [("image", IMAGE_TYPE)] + ([("label", pa.int64())] if names is not None else [])
    meta = {"huggingface": json.dumps({"info": {"features": features(names)}})}
    return pa.Table.from_pylist(rows, schema=pa.schema(fields, metadata=meta))


def image_rows(values: list[int], labels: list[int] | None = None, paths: bool = True):
    """Rows of gray images of the given ``values``, named ``img_VALUE.png`` when ``paths``."""
    return [
        {
            "image": {"bytes": png(v), "path": f"img_{v:03d}.png" if paths else None},
            **({"label": labels[k]} if labels is not None else {}),
        }
        for k, v in enumerate(values)
    ]


def write_parquet(path: Path, rows: list[dict], row_group_size: int = 4, **kwargs) -> Path:
    """One Parquet file of a Hub dataset (``data/train-00000-of-00001.parquet``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table(rows, **kwargs), path, row_group_size=row_group_size)
    return path


def write_saved(folder: Path, splits: dict[str, list[dict]], batch_rows: int = 5) -> Path:
    """A ``DatasetDict.save_to_disk`` folder: ``dataset_dict.json`` and per split an Arrow
    stream file of record batches, ``state.json`` and ``dataset_info.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))
    for split, rows in splits.items():
        part = folder / split
        part.mkdir()
        data = table(rows)
        file = str(part / "data-00000-of-00001.arrow")
        with pa.OSFile(file, "wb") as sink, pa.ipc.new_stream(sink, data.schema) as writer:
            for batch in data.to_batches(max_chunksize=batch_rows):
                writer.write_batch(batch)
        state = {"_data_files": [{"filename": "data-00000-of-00001.arrow"}], "_split": None}
        (part / "state.json").write_text(json.dumps(state))
        (part / "dataset_info.json").write_text(json.dumps({"features": features()}))
    return folder
