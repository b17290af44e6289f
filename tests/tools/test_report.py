"""The HTML report of a tiny run: every figure is a PNG, and the page renders in Chromium."""

import os
import re
import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import selfsup
from selfsup.cli import app
from selfsup.tools.audit import audit_run
from selfsup.tools.report import build_report

# Colours matplotlib draws with: tab:blue (training curves, bars), tab:orange (label-free
# curves), and the two ends of the RdBu_r heat maps (every map reaches one of them).
TAB_BLUE, TAB_ORANGE = (31, 119, 180), (255, 127, 14)
HEAT_ENDS = ((103, 0, 31), (5, 48, 97))


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory):
    """A tiny image run with an evaluation and an audit, and its report."""
    from tests.conftest import make_clusters

    folder = tmp_path_factory.mktemp("report")
    x, y = make_clusters(n_per_class=48)  # 192 items: 19 held out for monitoring
    data = folder / "clusters.npz"
    np.savez(data, X=x, y=y)
    with warnings.catch_warnings():  # two epochs on 192 items may raise the collapse alarm
        warnings.simplefilter("ignore")
        run = selfsup.pretrain(
            data, method="simclr", epochs=2, batch_size=32, log_every=2, out=folder / "run",
            backbone_options={"width": 4}, show_progress=False, precision="fp32",
        )  # fmt: skip
    run.evaluate(data, protocols=("knn", "linear"))
    groups = folder / "groups.csv"
    pd.DataFrame(
        {"id": [str(i) for i in range(len(y))], "group": np.where(y < 2, "p", "q")}
    ).to_csv(groups, index=False)
    audit_run(run, data, groups_file=groups, n_boot=20)
    result = CliRunner().invoke(app, ["report", str(run.path), "--data", str(data)])
    assert result.exit_code == 0, result.output
    return run.path, run.path / "report.html"


def test_every_figure_of_the_page_is_a_png_in_the_run_folder(reported_run) -> None:
    run_dir, page = reported_run
    text = page.read_text()
    written = sorted(p.name for p in (run_dir / "report").glob("*.png"))
    assert written == [
        "attribution-0.png", "attribution-191.png", "attribution-95.png", "embedding-map.png",
        "evaluation-clusters.npz-fit.png", "label-free-curves.png", "neighbours.png",
        "training-curves.png",
    ]  # fmt: skip
    shown = re.findall(r"data-file='([^']+)'", text)
    assert sorted(shown) == sorted([*(f"report/{name}" for name in written), "audit.png"])
    for relative in shown:
        assert (run_dir / relative).stat().st_size > 2000
    # Self-contained: every image is inline, nothing is fetched.
    assert text.count("<img") == len(shown) == text.count("src='data:image/png;base64,")
    # (base64 image data may spell "http" by chance: looked for outside it)
    assert "http" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    for heading in ("Training curves", "Label-free metrics", "Evaluation with labels",
                    "Embedding map", "Nearest neighbours", "What the encoder looks at",
                    "Bias audit"):  # fmt: skip
        assert f"<h2>{heading}</h2>" in text
    assert "fitted on" in text and "raw input" in text  # the evaluation table
    assert "no evaluation yet" not in text and "no audit yet" not in text


def test_missing_pieces_are_noted_not_fatal(reported_run, tmp_path) -> None:
    run_dir, _ = reported_run
    bare = tmp_path / "bare"
    shutil.copytree(run_dir, bare, ignore=shutil.ignore_patterns("*.json", "*.csv", "report*"))
    (bare / "encoder.json").write_text((run_dir / "encoder.json").read_text())
    page = build_report(bare, out=tmp_path / "page.html")
    text = page.read_text()
    assert "no metrics.csv" in text and "no epochs.csv" in text
    assert "no evaluation yet" in text and "no audit yet" in text
    # The config still names the run's data, so the map is drawn from it.
    assert (bare / "report" / "embedding-map.png").exists()


def _chromium() -> str:
    """The Chromium binary, installed with apt-get when missing and root (else skip)."""

    def found() -> str | None:
        return shutil.which("chromium") or shutil.which("chromium-browser")

    if found():
        return found()
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        pytest.skip("chromium is not installed (apt-get install chromium) and we are not root")
    for command in (["apt-get", "install", "-y", "chromium"], ["apt-get", "update"],
                    ["apt-get", "install", "-y", "chromium"]):  # fmt: skip
        try:
            subprocess.run(command, timeout=600, capture_output=True, check=False)
        except (subprocess.SubprocessError, OSError) as err:
            pytest.skip(f"chromium is not installed and {' '.join(command)} failed: {err}")
        if found():
            return found()
    pytest.skip("chromium is not installed and apt-get install chromium did not install it")


def _count_near(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    return int((np.abs(pixels - np.array(colour)).max(axis=2) <= tolerance).sum())


def test_the_page_renders_with_its_plots_in_headless_chromium(reported_run, tmp_path) -> None:
    from PIL import Image

    _, page = reported_run
    chromium = _chromium()
    shot = tmp_path / "page.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
         "--window-size=1200,6000", "--hide-scrollbars", page.resolve().as_uri()],
        timeout=120, capture_output=True, check=True,
    )  # fmt: skip
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (6000, 1200)
    background = (pixels.min(axis=2) > 235).mean()
    assert background < 0.9, "the page is (nearly) blank"
    assert _count_near(pixels, TAB_BLUE) > 2000  # loss curve and evaluation bars
    assert _count_near(pixels, TAB_ORANGE) > 300  # label-free curves
    assert max(_count_near(pixels, end, 20) for end in HEAT_ENDS) > 0  # attribution maps
    palette = {c for c in map(tuple, pixels[::4, ::4].reshape(-1, 3))}
    assert len(palette) > 500, "a page of plots has many colours"


def test_the_map_is_coloured_by_group_and_umap_falls_back_to_pca(reported_run, tmp_path) -> None:
    import importlib.util

    from PIL import Image

    run_dir, _ = reported_run
    data, groups = run_dir.parent / "clusters.npz", run_dir.parent / "groups.csv"
    # tab:green at the map's alpha 0.7 on white: the third colour, for a third label (there
    # are four labels but two groups).
    tab_green = tuple(round(0.7 * c + 0.3 * 255) for c in (44, 160, 44))

    def greens() -> int:
        with Image.open(run_dir / "report" / "embedding-map.png") as picture:
            return _count_near(np.asarray(picture.convert("RGB")).astype(int), tab_green, 10)

    build_report(run_dir, data, out=tmp_path / "labels.html")
    assert greens() > 50
    page = build_report(run_dir, data, out=tmp_path / "groups.html", groups_file=groups,
                        use_umap=True)  # fmt: skip
    assert greens() == 0
    if importlib.util.find_spec("umap") is None:
        assert "UMAP is not installed (pip install umap-learn): PCA instead" in page.read_text()
