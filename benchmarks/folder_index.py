"""Benchmark: indexing a folder of a million photos, and what a run's saved index saves.

The folder: ``--files`` JPEGs (default 1,000,000) in two class folders of subfolders of 1,000
files each (``a/0000/0000000.jpg``...), every one a hard link to one of the first 200 photos of
``benchmarks/photos.py`` (640x480 JPEGs cut from real images): real, readable files at the cost
of a directory entry each. Each step below runs as its own Python process (a cold interpreter,
the file system's caches warm from the folder's creation; nothing here can drop them), with its
peak resident memory:

1. **os.walk, as before**: the scan selfsup used until now (``os.walk``, a ``Path`` per file),
   the baseline.
2. **one scan**: ``scan_folder`` (``os.scandir``, names joined as strings, folder times noted).
3. **open, scanned**: ``ImageFolderSource(FOLDER)``: the scan, the labels from the subfolders,
   the headers of 64 files; then the index saved as a run keeps it (``data_index.json``).
   The save is timed alone (after a scan).
4. **open, saved index**: the same with the saved index: read, checked (every folder's time
   compared) and used.
5. ``selfsup pretrain FOLDER --steps 2`` (defaults otherwise) and ``selfsup pretrain --resume
   RUN --steps 3``: the "opened in" of their data lines.

Usage:
    python benchmarks/folder_index.py                   # a million files (~5 min)
    python benchmarks/folder_index.py --files 100000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import load_average, watch, write_section
from photos import make_photos
from selfsup.run import _machine

PER_FOLDER = 1000
SOURCES = 200

_BEFORE = """
import os, sys
from pathlib import Path
_t = time.perf_counter()
root = Path(sys.argv[1])
endings = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
found = []
for folder, subfolders, files in os.walk(root):
    subfolders[:] = [d for d in subfolders if not d.startswith(".")]
    rel_folder = Path(folder).relative_to(root)
    for file in files:
        if not file.startswith(".") and file.lower().endswith(endings):
            found.append((rel_folder / file).as_posix())
files = sorted(found)
"""
_IMPORTS = """
import sys
from selfsup.data.folders import scan_folder
from selfsup.data.image_folder import ImageFolderSource
_t = time.perf_counter()
"""
_SCAN = """
import sys
from selfsup.data.folders import scan_folder
from selfsup.data.image_folder import IMAGE_EXTENSIONS
_t = time.perf_counter()
files = scan_folder(sys.argv[1], IMAGE_EXTENSIONS).files
"""
_OPEN = """
import sys
from pathlib import Path
from selfsup.data.folders import IndexCache
from selfsup.data.image_folder import ImageFolderSource
_t = time.perf_counter()
source = ImageFolderSource(sys.argv[1], index=IndexCache(Path(sys.argv[2])))
files = source.ids
note = source.index_note
"""
_SAVE = """
import sys
from selfsup.data.folders import scan_folder
from selfsup.data.image_folder import IMAGE_EXTENSIONS
index = scan_folder(sys.argv[1], IMAGE_EXTENSIONS)
_t = time.perf_counter()
index.save(sys.argv[2])
"""


def _timed(body: str, *argv: str) -> dict:
    """Run ``body`` in a fresh interpreter: its seconds from where it sets ``_t`` (imports
    excluded), how many ``files`` it found and its peak resident memory."""
    code = (
        "import time, json\n"
        "def _peak_mb():  # VmHWM: ru_maxrss would keep the parent's peak across exec\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1]) // 1024\n"
        + body
        + "\nprint(json.dumps({'seconds': round(time.perf_counter() - _t, 2), 'files': "
        "len(files) if 'files' in dir() else None, 'note': globals().get('note'), "
        "'peak_rss_mb': _peak_mb()}))"
    )
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_folder(folder: Path, photos: Path, n: int) -> float:
    """Hard links to the first ``SOURCES`` photos, ``PER_FOLDER`` a subfolder; seconds taken
    (0 when the folder is there already)."""
    marker = folder / ".complete"
    if marker.exists() and marker.read_text() == str(n):
        return 0.0
    shutil.rmtree(folder, ignore_errors=True)
    make_photos(photos, SOURCES)
    sources = sorted(photos.glob("*/*.jpg"))[:SOURCES]
    started = time.perf_counter()
    for i in range(n):
        if i % PER_FOLDER == 0:
            sub = folder / ("a" if i < n // 2 else "b") / f"{i // PER_FOLDER:04d}"
            sub.mkdir(parents=True)
            if i % 100_000 == 0:
                print(f"  linked {i:,}/{n:,} files", flush=True)
        os.link(sources[i % len(sources)], sub / f"{i:07d}.jpg")
    marker.write_text(str(n))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=Path("data/million-photos"))
    parser.add_argument("--photos", type=Path, default=Path("data/photos-640x480"))
    parser.add_argument("--runs", type=Path, default=Path("runs/bench/folder-index"))
    args = parser.parse_args()
    shutil.rmtree(args.runs, ignore_errors=True)
    args.runs.mkdir(parents=True)
    begun = time.perf_counter()
    results: dict = {"machine": _machine(), "load_before": load_average(), "files": args.files}
    results["make_s"] = round(make_folder(args.data, args.photos, args.files), 1)
    time.sleep(2.5)  # folders modified within 2 s of a scan are not trusted from an index
    folder = str(args.data)
    index = str(args.runs / "data_index.json")

    results["imports"] = _timed(_IMPORTS)
    print("imports alone:", results["imports"], flush=True)
    results["before"] = _timed(_BEFORE, folder)
    print("os.walk, as before:", results["before"], flush=True)
    results["scan"] = _timed(_SCAN, folder)
    print("one scan:", results["scan"], flush=True)
    results["open_scanned"] = _timed(_OPEN, folder, index)
    print("open, scanned:", results["open_scanned"], flush=True)
    results["save"] = _timed(_SAVE, folder, index)
    results["index_mb"] = round(os.path.getsize(index) / 2**20, 1)
    print("save:", results["save"], results["index_mb"], "MB", flush=True)
    results["open_saved"] = _timed(_OPEN, folder, index)
    print("open, saved index:", results["open_saved"], flush=True)
    assert results["open_saved"]["note"].startswith("file list from"), results["open_saved"]

    selfsup = [sys.executable, "-m", "selfsup"]
    run = args.runs / "run"
    for name, command in (
        ("pretrain", [*selfsup, "pretrain", folder, "--steps", "2", "--out", str(run)]),
        ("resume", [*selfsup, "pretrain", "--resume", str(run), "--steps", "3"]),
    ):
        results[name] = watch(command, args.runs / f"{name}.log")
        log = (args.runs / f"{name}.log").read_text()
        data_line = next(line for line in log.splitlines() if line.startswith("data:"))
        results[name]["data_line"] = data_line
        results[name]["opened_s"] = float(re.search(r"opened in ([\d.]+) s", data_line)[1])
        print(name, json.dumps(results[name]), flush=True)

    results["load_after"] = load_average()
    results["minutes"] = round((time.perf_counter() - begun) / 60, 1)
    (args.runs / "folder_index.json").write_text(json.dumps(results, indent=2))
    write_section("folder-index", report(results, args))
    print(json.dumps(results, indent=2))


def report(r: dict, args: argparse.Namespace) -> str:
    rows = [
        ("(a process that imports selfsup's folder readers and does nothing else)", r["imports"]),
        ("os.walk, a Path per file (as before)", r["before"]),
        ("one scan (`scan_folder`)", r["scan"]),
        ("open the folder: scan, labels, 64 headers", r["open_scanned"]),
        ("save the index (`data_index.json`)", r["save"]),
        ("open the folder with the run's saved index (checked, unchanged)", r["open_saved"]),
    ]
    lines = [
        "## Indexing a folder of a million photos (benchmarks/folder_index.py)",
        "",
        f"{r['files']:,} JPEGs (hard links to 200 of benchmarks/photos.py's 640x480 photos) in "
        f"{r['files'] // PER_FOLDER:,} subfolders of two class folders; each step a fresh "
        "process, file system caches warm. "
        f"Machine: {r['machine']}; load before {r['load_before']}, after {r['load_after']}; "
        f"{r['minutes']} minutes in all. Reproduce: "
        f"`python benchmarks/folder_index.py --files {args.files}`.",
        "",
        "| step | seconds | peak memory of the process |",
        "| --- | --- | --- |",
        *(f"| {name} | {m['seconds']} | {m['peak_rss_mb']:,} MB |" for name, m in rows),
        f"| `selfsup pretrain FOLDER --steps 2`: data opened in | {r['pretrain']['opened_s']} s "
        f"| {r['pretrain']['peak_pss_gb']} GB (whole run) |",
        f"| `selfsup pretrain --resume RUN --steps 3`: data opened in | "
        f"{r['resume']['opened_s']} s | {r['resume']['peak_pss_gb']} GB (whole run) |",
        "",
        f"The saved index is {r['index_mb']} MB. Data lines: `{r['pretrain']['data_line']}`; "
        f"`{r['resume']['data_line']}`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
