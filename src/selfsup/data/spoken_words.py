"""A labelled set of SYNTHETIC spoken words, made with the espeak-ng speech synthesizer.

No real speech corpus installs offline, so this builds one: each word is spoken by every
voice (an espeak-ng accent with a voice variant) at every speed and pitch. The voices are
split into train and test voices, so the test clips are spoken by voices never heard in
training. The audio is synthetic (formant synthesis, not recordings of people); the
metadata says so and so should any result made on it.

Layout: ``OUT/train/<word>/<voice>_<speed>_<pitch>.wav`` and ``OUT/test/...`` (22.05 kHz
mono 16-bit WAV, as espeak-ng writes them), and ``OUT/metadata.json``.

Example:
    >>> voice_name("en-us", "f2"), voice_name("en-gb", "")
    ('en-us+f2', 'en-gb')
    >>> train, test = split_voices(["a", "b", "c", "d"], test_fraction=0.25, seed=0)
    >>> len(train), len(test), sorted(train + test)
    (3, 1, ['a', 'b', 'c', 'd'])
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfsup.core.progress import TrainingProgress

#: The ten keywords of Speech Commands v2 (Warden 2018), BYOL-A's SPCV2 task.
DEFAULT_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
#: espeak-ng's English accents.
DEFAULT_ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
)
#: espeak-ng's voice variants; "" is the accent's own default voice.
DEFAULT_VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt",
    "croak", "whisper",
)  # fmt: skip
#: Words per minute (espeak-ng's default is 175).
DEFAULT_SPEEDS = (130, 175)
#: Pitch, 0 to 99 (espeak-ng's default is 50).
DEFAULT_PITCHES = (35, 65)
METADATA_FILE = "metadata.json"
SYNTHETIC_NOTE = (
    "SYNTHETIC speech: every clip was made by the espeak-ng formant synthesizer, not recorded "
    "from people; results on it say how a method does on synthetic voices only."
)


class SynthesisError(ValueError):
    """espeak-ng could not speak a word with a voice (an unknown voice, a failure)."""


@dataclass
class SpokenWordsSet:
    """What :func:`make_spoken_words` wrote.

    Attributes:
        root: the output folder.
        train_files: clips under ``root/train``.
        test_files: clips under ``root/test``.
        train_voices: the voices of the train clips.
        test_voices: the voices of the test clips, none of them in ``train_voices``.
        seconds: how long synthesis took.
    """

    root: Path
    train_files: int
    test_files: int
    train_voices: list[str]
    test_voices: list[str]
    seconds: float


def voice_name(accent: str, variant: str) -> str:
    """espeak-ng's ``-v`` value: the accent, with ``+variant`` when there is one."""
    return f"{accent}+{variant}" if variant else accent


def split_voices(
    voices: Sequence[str], test_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """A seeded split of the voices into train and test voices (at least one each).

    Raises:
        ValueError: fewer than two voices, or ``test_fraction`` outside (0, 1).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if len(voices) < 2:
        raise ValueError(f"a train/test split by voice needs at least two voices, got {voices}")
    order = np.random.default_rng(seed).permutation(len(voices))
    n_test = min(len(voices) - 1, max(1, round(test_fraction * len(voices))))
    test = sorted(voices[i] for i in order[:n_test])
    train = sorted(voices[i] for i in order[n_test:])
    return train, test


def espeak_binary() -> str:
    """The path of ``espeak-ng``.

    Raises:
        FileNotFoundError: espeak-ng is not installed; the message says how to install it.
    """
    found = shutil.which("espeak-ng")
    if found is None:
        raise FileNotFoundError(
            "espeak-ng is not installed, and the spoken-word set is synthesized with it: "
            "apt-get install espeak-ng"
        )
    return found


def _listed(binary: str, kind: str) -> set[str]:
    """espeak-ng's languages (``kind`` "") or voice variants (``kind`` "variant")."""
    command = [binary, f"--voices={kind}" if kind else "--voices"]
    listing = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    rows = [line.split() for line in listing.splitlines()[1:] if line.strip()]
    if kind == "variant":  # the File column, "!v/name"
        return {row[4].split("/")[-1] for row in rows if len(row) > 4}
    return {row[1] for row in rows if len(row) > 1}


def check_voices(binary: str, accents: Sequence[str], variants: Sequence[str]) -> None:
    """Refuse accents and variants espeak-ng does not have (it would silently use its default
    voice instead).

    Raises:
        SynthesisError: naming the unknown ones.
    """
    unknown_accents = sorted(set(accents) - _listed(binary, ""))
    unknown_variants = sorted(set(variants) - {""} - _listed(binary, "variant"))
    if unknown_accents or unknown_variants:
        raise SynthesisError(
            f"espeak-ng has no accent {unknown_accents} / variant {unknown_variants}; see "
            "`espeak-ng --voices` and `espeak-ng --voices=variant`"
        )


def _synthesize(binary: str, voice: str, speed: int, pitch: int, word: str, path: Path) -> None:
    """One clip; raises SynthesisError naming the voice and word when espeak-ng fails."""
    command = [binary, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), word]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0 or not path.exists() or path.stat().st_size <= 44:
        reason = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}, no audio"
        raise SynthesisError(f"espeak-ng could not speak {word!r} with voice {voice!r}: {reason}")


def make_spoken_words(
    out: str | os.PathLike,
    words: Sequence[str] = DEFAULT_WORDS,
    accents: Sequence[str] = DEFAULT_ACCENTS,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    speeds: Sequence[int] = DEFAULT_SPEEDS,
    pitches: Sequence[int] = DEFAULT_PITCHES,
    test_fraction: float = 0.25,
    seed: int = 0,
    workers: int | None = None,
    show_progress: bool = True,
) -> SpokenWordsSet:
    """Synthesize the spoken-word set into ``out`` (see the module docstring).

    Args:
        out: the folder to create; it must not exist or be empty.
        words: the words, one class each (letters, digits, ``-`` and ``'`` only).
        accents: espeak-ng voices (``espeak-ng --voices=en`` lists them).
        variants: voice variants (``m1``..``m7``, ``f1``..``f5``, ``klatt``, ``croak``,
            ``whisper``...); "" is the accent's default voice.
        speeds: words per minute.
        pitches: pitches, 0 to 99.
        test_fraction: fraction of the voices (accent + variant) kept for test.
        seed: seed of the voice split.
        workers: espeak-ng processes run at once (default: the CPU count).
        show_progress: draw a progress bar.

    Raises:
        FileNotFoundError: espeak-ng is not installed.
        FileExistsError: ``out`` holds files already.
        ValueError: an empty list, a word that cannot be a folder name, or a bad split.
        SynthesisError: an accent or variant espeak-ng does not have, or espeak-ng failed.

    Example:
        >>> import tempfile
        >>> made = make_spoken_words(tempfile.mkdtemp() + "/w", words=["yes", "no"],
        ...     accents=["en-us"], variants=["m1", "f1"], speeds=[150], pitches=[50],
        ...     test_fraction=0.5, show_progress=False)
        >>> made.train_files, made.test_files, len(set(made.train_voices) & set(made.test_voices))
        (2, 2, 0)
    """
    binary = espeak_binary()
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: not empty; remove it or choose another folder")
    for name, values in (
        ("words", words),
        ("accents", accents),
        ("variants", variants),
        ("speeds", speeds),
        ("pitches", pitches),
    ):
        if not values:
            raise ValueError(f"{name}: give at least one")
    bad = [w for w in words if not re.fullmatch(r"[A-Za-z0-9'-]+", w)]
    if bad:
        raise ValueError(f"words {bad}: use letters, digits, - and ' only (one folder each)")
    check_voices(binary, accents, variants)
    voices = [voice_name(a, v) for a in accents for v in variants]
    train_voices, test_voices = split_voices(voices, test_fraction, seed)
    jobs = [
        (voice, speed, pitch, word, root / split / word / f"{voice}_{speed}_{pitch}.wav")
        for split, members in (("train", train_voices), ("test", test_voices))
        for voice in members
        for word in words
        for speed in speeds
        for pitch in pitches
    ]
    for folder in {job[-1].parent for job in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with (
        ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool,
        TrainingProgress(len(jobs), "synthesizing spoken words", enabled=show_progress) as bar,
    ):
        running = [pool.submit(_synthesize, binary, *job) for job in jobs]
        for future in running:
            future.result()
            bar.advance(1, 1)
    seconds = time.perf_counter() - started
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    n_train = sum(1 for job in jobs if job[-1].parts[-3] == "train")
    metadata = {
        "synthetic": True,
        "note": SYNTHETIC_NOTE,
        "synthesizer": version.stdout.strip(),
        "layout": "train|test/<word>/<voice>_<speed>_<pitch>.wav",
        "sample_rate": 22050,
        "words": list(words),
        "accents": list(accents),
        "variants": list(variants),
        "speeds": list(speeds),
        "pitches": list(pitches),
        "split": "by voice (accent + variant): no test voice speaks in train",
        "test_fraction": test_fraction,
        "seed": seed,
        "train_voices": train_voices,
        "test_voices": test_voices,
        "files": {"train": n_train, "test": len(jobs) - n_train},
    }
    (root / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    return SpokenWordsSet(root, n_train, len(jobs) - n_train, train_voices, test_voices, seconds)


def describe_spoken_words(made: SpokenWordsSet) -> str:
    """A short text of what was made, saying that it is synthetic.

    Example:
        >>> made = SpokenWordsSet(Path("w"), 2, 2, ["en-us+m1"], ["en-us+f1"], 0.1)
        >>> print(describe_spoken_words(made).splitlines()[0])
        wrote 2 train clips (1 voices) and 2 test clips (1 other voices) to w in 0.1 s
    """
    return "\n".join(
        [
            f"wrote {made.train_files} train clips ({len(made.train_voices)} voices) and "
            f"{made.test_files} test clips ({len(made.test_voices)} other voices) to "
            f"{made.root} in {made.seconds:.1f} s",
            SYNTHETIC_NOTE,
            f"metadata: {made.root / METADATA_FILE}",
        ]
    )
