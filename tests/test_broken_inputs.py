"""Every case of the broken-input corpus (tests/broken_inputs.py) gets its documented outcome
through the command line: one ``error:`` line and exit status 2, or the bad file listed as
unreadable, and never a traceback."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from tests.broken_inputs import CASES, Case, Fixtures, run_cli
from tests.conftest import make_clusters

from selfsup.run import pretrain
from selfsup.tools.adapt import adapt


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Fixtures:
    """A finished small run on labelled images, and a model adapted on it."""
    folder = tmp_path_factory.mktemp("corpus-fixtures")
    x, y = make_clusters(n_per_class=32, size=12)
    data = folder / "clusters.npz"
    np.savez(data, X=x, y=y)
    run = pretrain(str(data), steps=4, batch_size=32, out=folder / "run", monitor_items=0,
                   backbone_options={"width": 8}, show_progress=False)  # fmt: skip
    model = adapt(run, str(data), shots=8)
    model.save(folder / "model")
    return Fixtures(run.path, folder / "model", data)


def check_outcome(case: Case, status: int, output: str) -> None:
    """Assert the documented outcome of ``case`` from a command's status and output."""
    assert "Traceback" not in output, output
    if case.outcome == "error":
        lines = [line for line in output.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        assert status == 2, output
        assert len(errors) == 1 and errors[0] == lines[-1], output
        assert "unexpected" not in errors[0], output  # a bug, not a documented outcome
        assert re.search(case.expect, errors[0]), (case.expect, errors[0])
        return
    assert status == 0, output
    if case.outcome == "skipped":
        info = json.loads(output[output.index("{") :])
        reasons = [f"{item}: {why}" for item, why in info["unreadable"].items()]
        assert len(reasons) == 1 and re.search(case.expect, reasons[0]), (case.expect, reasons)
        assert info["readable"] == info["items"] - 1
    else:
        assert re.search(case.expect, output), (case.expect, output)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_broken_input_gets_its_documented_outcome(
    case: Case, fixtures: Fixtures, tmp_path: Path, monkeypatch
) -> None:
    args = case.make(tmp_path / "input", fixtures)
    monkeypatch.chdir(tmp_path)  # nothing a case writes lands in the repository
    status, output = run_cli(args)
    check_outcome(case, status, output)
    assert not list(tmp_path.rglob(".*.tmp*")), "a temporary file was left behind"
    assert not (tmp_path / "pwned").exists()


def test_the_corpus_covers_every_reader_and_kind_of_damage() -> None:
    readers = {case.reader for case in CASES}
    assert readers == {
        "image folder", ".npy/.npz arrays", "CSV/Parquet tables", ".ts series",
        "text and JSONL", "WAV audio folder", "run folder", "model folder",
    }  # fmt: skip
    names = " ".join(case.name for case in CASES).lower()
    for damage in ("zero-byte", "truncated", "wrong extension", "huge header", "wrong dtype",
                   "wrong rank", "empty", "non-utf-8", "binary", "inf", "nan"):  # fmt: skip
        assert damage in names, damage
