"""Every case of the broken-input corpus (tests/broken_inputs.py) gets its documented outcome
through the command line: one ``error:`` line and exit status 2, or the bad file listed as
unreadable, and never a traceback."""

from pathlib import Path

import pytest
from tests.broken_inputs import CASES, Case, Fixtures, check_outcome, make_fixtures, run_cli


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Fixtures:
    """A finished small run on labelled images, and a model adapted on it."""
    return make_fixtures(tmp_path_factory.mktemp("corpus-fixtures"))


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
        "text and JSONL", "WAV audio folder", "run folder", "model folder", "labels",
        "Hugging Face dataset", "WebDataset shards",
    }  # fmt: skip
    names = " ".join(case.name for case in CASES).lower()
    for damage in ("zero-byte", "truncated", "wrong extension", "huge header", "wrong dtype",
                   "wrong rank", "empty", "non-utf-8", "binary", "inf", "nan"):  # fmt: skip
        assert damage in names, damage
