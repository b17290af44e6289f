"""Progress reads the same on a terminal, in a pipe and in the log file, and its output does
not grow with the number of steps or epochs."""

import io
import subprocess
import sys

import numpy as np
import pandas as pd
from rich.console import Console

from selfsup.core.progress import TrainingProgress


def test_plain_lines_in_a_pipe_and_every_note_in_the_log(tmp_path) -> None:
    screen = io.StringIO()
    log = tmp_path / "train.log"
    with TrainingProgress(
        10, "demo", console=Console(file=screen), log_file=log, plain_every=0.0
    ) as bar:
        bar.note("[bold]start[/bold]")
        for _ in range(10):
            bar.advance(1, items=4, loss=0.25)
        for epoch in range(100):
            bar.routine(f"epoch {epoch}")
    shown = screen.getvalue().splitlines()
    assert shown[0] == "start" and "\x1b" not in screen.getvalue()  # no bar frames, no colour
    assert "demo: step 10/10 (100%), loss 0.2500" in shown[-1]
    # 100 routine notes: the screen got the first (the next are due 15 s later), the log all.
    assert sum(line.startswith("epoch") for line in shown) == 1
    logged = log.read_text().splitlines()
    assert sum(" epoch " in line for line in logged) == 100
    assert any("start" in line and "[bold]" not in line for line in logged)


def test_a_twelve_second_table_run_prints_few_lines_to_a_pipe(tmp_path) -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(569, 30)), columns=[f"f{i}" for i in range(30)])
    table["label"] = rng.integers(0, 2, 569)
    table.to_csv(tmp_path / "table.csv", index=False)
    command = [
        sys.executable, "-m", "selfsup", "pretrain", str(tmp_path / "table.csv"),
        "--label-column", "label", "--time-budget", "0.2", "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    out = done.stdout.decode()
    assert done.returncode == 0, out
    lines = out.splitlines()
    assert len(lines) < 40, out
    assert sum(": step " in line and "items/s" in line for line in lines) >= 2, out
    assert "\r" not in out and "\x1b[" not in out  # no bar frames in a pipe
    assert len((tmp_path / "run" / "train.log").read_text().splitlines()) > len(lines)


def test_a_long_step_does_not_silence_the_output() -> None:
    import time

    screen = io.StringIO()
    with TrainingProgress(4, "slow", console=Console(file=screen), plain_every=1.0) as bar:
        bar.advance(1, items=8, loss=1.0)
        time.sleep(2.6)  # one long step: a huge image decoding, say
    lines = [line for line in screen.getvalue().splitlines() if "slow: step 1/4" in line]
    assert len(lines) >= 2, screen.getvalue()


def test_a_pause_for_measuring_is_named_and_left_out_of_the_rate() -> None:
    import time

    screen = io.StringIO()
    with TrainingProgress(4, "run", console=Console(file=screen), plain_every=1.0) as bar:
        time.sleep(0.5)
        bar.advance(1, items=100, loss=1.0)  # 100 items in about 0.5 s
        with bar.phase("measuring 2,048 held-out items"):
            time.sleep(2.6)
        rate = bar.rate()
    lines = screen.getvalue().splitlines()
    paused = [line for line in lines if "run: measuring 2,048 held-out items (0:00:0" in line]
    assert len(paused) >= 2 and "after step 1/4" in paused[0], lines
    assert 120 < rate < 260, rate  # would be below 40 with the pause counted


def test_the_preparing_ticker_stays_quiet_through_a_nested_display() -> None:
    """The held-out measurement's display ends inside training's: the ticker must not read
    that as training having ended (it printed 'preparing (30 s)' mid-training)."""
    import time

    from selfsup.core.progress import Preparing

    screen = io.StringIO()
    console = Console(file=screen)
    with Preparing(console, "pretrain", every=0.02):
        time.sleep(0.1)
        before = screen.getvalue().count("preparing (")
        with TrainingProgress(5, "train", enabled=False, console=console):
            with TrainingProgress(3, "held-out", enabled=False, console=console):
                pass
            time.sleep(0.2)
            during = screen.getvalue().count("pretrain: ")
        time.sleep(0.1)
    text = screen.getvalue()
    assert before >= 1 and during == before
    assert "pretrain: working (" in text  # after the display: not "preparing" any more
    assert text.count("preparing (") == before


def test_the_closing_line_does_not_repeat_the_last_one() -> None:
    screen = io.StringIO()
    with TrainingProgress(4, "demo", console=Console(file=screen), plain_every=0.0) as bar:
        for _ in range(4):
            bar.advance(1, items=2, loss=0.5)
    lines = screen.getvalue().splitlines()
    assert sum("step 4/4 (100%)" in line for line in lines) == 1, lines
    screen = io.StringIO()  # a note after the last line: the closing line sums up again
    with TrainingProgress(4, "demo", console=Console(file=screen), plain_every=0.0) as bar:
        bar.advance(4, items=8, loss=0.5)
        bar.note("epoch 1")
    lines = screen.getvalue().splitlines()
    assert lines[-2] == "epoch 1" and "step 4/4 (100%)" in lines[-1], lines


def test_the_ticker_names_the_activity_under_way() -> None:
    """A silent step (a probe fitted on 800,000 rows) is named by the ticker, not 'working'."""
    import time

    from selfsup.core.progress import Preparing, activity

    screen = io.StringIO()
    with Preparing(Console(file=screen), "evaluate t.csv", every=0.02):
        with activity("linear on raw input, 8 + 2 items"):
            time.sleep(0.1)
        time.sleep(0.1)
    lines = screen.getvalue().splitlines()
    assert any(
        line.startswith("evaluate t.csv: linear on raw input, 8 + 2 items (") for line in lines
    )
    assert lines[-1].startswith("evaluate t.csv: preparing (")  # the activity ended


def test_auto_progress_shows_long_work_only_and_a_bar_from_the_right_step(monkeypatch) -> None:
    import time

    import selfsup.core.progress as progress

    monkeypatch.setattr(progress, "AUTO_AFTER", 0.5)
    for terminal in (False, True):
        quick, slow = io.StringIO(), io.StringIO()
        screen = {"force_terminal": terminal, "width": 200}
        with TrainingProgress(
            3, "quick", enabled="auto", console=Console(file=quick, **screen), plain_every=0.1
        ) as bar:
            for _ in range(3):
                bar.advance(1, items=1)  # one text embedded in a loop: nothing to show
        assert quick.getvalue() == "", quick.getvalue()
        with TrainingProgress(
            8, "slow", enabled="auto", console=Console(file=slow, **screen), plain_every=0.1
        ) as bar:
            for _ in range(8):
                bar.advance(1, items=1)
                time.sleep(0.1)
        assert "slow" in slow.getvalue() and "8/8" in slow.getvalue(), slow.getvalue()
        assert ("\x1b[" in slow.getvalue()) == terminal  # a bar on a terminal, lines elsewhere


def test_a_hint_is_given_once_to_work_that_will_outlast_its_limit(monkeypatch) -> None:
    import time

    import selfsup.core.progress as progress

    monkeypatch.setattr(progress, "HINT_AFTER", 0.2)

    def run(limit: float) -> str:
        screen = io.StringIO()
        with progress.hint_when_longer(limit, "note: {eta} to go; try the student"):
            bar = TrainingProgress(40, "embedding", console=Console(file=screen), plain_every=0.1)
            with bar:
                for _ in range(8):  # 8 of 40 steps in 0.4 s: about 1.6 s to go
                    bar.advance(1, items=1)
                    time.sleep(0.05)
        return screen.getvalue()

    slow = run(limit=1.0)
    assert slow.count("try the student") == 1 and "note: 0:00:01 to go" in slow, slow
    assert "try the student" not in run(limit=60.0)
    assert progress._HINTS == []  # the block's hint ends with it
