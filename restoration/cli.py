"""Command line of restore.py.

    python restore.py INPUT... -o OUTDIR [--model deploy.prototxt]
        [--weights x.caffemodel] [--gpu N] [--recursive] [--figure]
        [--overwrite] [--tile N] [--engine auto|layers|net]
        [--align-rows [KEY=VALUE,...]] [--self-ensemble]

INPUTs are files and/or folders (a folder's supported files; sub-folders with
``--recursive``).  Outputs mirror the input folder structure under OUTDIR
(see :mod:`restoration.outputs`).  A file that cannot be restored gets one
line ``error: <file>: <reason>`` and the others go on; the exit status is 1
if any file failed, 2 if nothing could start (no weights, bad model).
"""
from __future__ import annotations

import argparse
import os
import signal as signals
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stem_restore.rowalign import DEFAULT_ALIGN

from .api import (DEFAULT_WEIGHTS, REPO, Model, check_engine, check_gpu, check_tile, default_model,
                  model_files, restore_frames)
from .engine import DEFAULT_TILE, ENGINES, STREAM_WINDOW, Restorer
from .io import SUPPORTED_SUFFIXES, InputError, is_supported, path_problem, read_image
from .outputs import (StaleTemps, is_temp_output, output_set, read_set_id, set_status, write_figure,
                      write_tiff)
from .prealign import align_option
from .tiling import CONTEXT
from .validate import ModelError, glog_reason, validate_model

__all__ = ["main", "build_parser", "default_model", "DEFAULT_WEIGHTS", "REPO", "check_gpu",
           "glog_reason"]


def prog_name() -> str:
    """``stem-restore`` when run as the console script, else ``restore.py``."""
    return "stem-restore" if Path(sys.argv[0]).name == "stem-restore" else "restore.py"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog_name(),
        description="Restore STEM micrographs (raw | restored | difference) with a trained Caffe model.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="image files and/or folders (at least one)")
    p.add_argument("-o", "--outdir", required=True, type=Path, help="output folder")
    p.add_argument("--model", type=Path, default=None,
                   help="deploy prototxt (default: models/deploy.prototxt if present, "
                        "else prototxt/deploy.prototxt)")
    p.add_argument("--weights", type=Path, default=None,
                   help=f"trained .caffemodel (default: {DEFAULT_WEIGHTS.relative_to(REPO)})")
    p.add_argument("--gpu", type=int, default=None, metavar="N", help="run on GPU N (default: CPU)")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders of folder inputs")
    p.add_argument("--figure", action="store_true", help="also write <stem>_figure.png (raw | restored | difference)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip the file)")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help=f"window edge fed to the net in px (default: automatic, so that memory stays "
                        f"under ~3.6 GB: up to {STREAM_WINDOW} px with the layers engine, {DEFAULT_TILE} px "
                        f"with the net engine; 0 = whole image at once); windows overlap by {CONTEXT} px, "
                        f"so the result does not depend on it")
    p.add_argument("--engine", choices=ENGINES, default="auto",
                   help="layers: Caffe's layers one at a time over small blocks (512 B per window pixel); "
                        "net: the whole deploy net per window (~73 kB per window pixel); "
                        "auto (default): layers on CPU when the net is a plain convolution chain, else net")
    p.add_argument("--align-rows", nargs="?", const=True, default=None, metavar="KEY=VALUE,...",
                   help=f"align the scan lines of each frame by whole-row cross-correlation before the "
                        f"net, and, where the frame showed line jitter, those of the net's output after it "
                        f"(default off): for frames with visible line jitter, where it helps the net (about "
                        f"+2 dB on simulated jitter, +0.65 to +0.96 on the simulated full mix); it costs frames "
                        f"without 0.4-1.1 dB. Optional parameters of "
                        f"stem_restore.rowalign.align_rows for the first alignment, overriding the "
                        f"defaults {DEFAULT_ALIGN}")
    p.add_argument("--self-ensemble", action="store_true",
                   help="restore each frame twice, as read and with its scan lines in reverse order, and "
                        "average (restoration.ensemble): +0.01 (drift) to +0.7 dB on simulated frames, most on good "
                        "ones, for twice the time (default off)")
    return p


@dataclass
class Job:
    """One input file and where its outputs go (relative to OUTDIR)."""

    path: Path
    rel_dir: Path
    stem: str


@dataclass
class Summary:
    """What a run did, and what it is doing (for an accurate message when interrupted)."""

    restored: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    #: the input file being restored, or None between files
    in_progress: Path | None = None
    #: its output files and set id, once they are being written
    writing: tuple[list[Path], str] | None = None
    #: output file (lower case) -> the input of this run that has it
    claimed: dict[str, Path] = field(default_factory=dict)


def _listing(p: Path, recursive: bool, summary: Summary):
    """(path, is a folder) of every entry of folder ``p`` (and, if ``recursive``, of its
    sub-folders, without following links to folders); a sub-folder that cannot be listed is
    recorded as a failure, not skipped in silence."""
    if not recursive:
        for f in p.iterdir():
            try:
                yield f, f.is_dir()
            except OSError:
                yield f, False  # path_problem() says why
        return

    def unlistable(err: OSError) -> None:
        summary.failed.append((Path(err.filename), f"cannot list the folder: {err.strerror or err}"))

    for root, dirs, files in os.walk(p, onerror=unlistable):
        dirs.sort()
        for name in dirs:
            yield Path(root) / name, True
        for name in files:
            yield Path(root) / name, False


OUTPUT_ENDINGS = ("_restored.tif", "_difference.tif", "_figure.png")


def is_own_output(f: Path, outdir_abs: Path) -> bool:
    """True for a file restore.py wrote, never an input found in a folder: named like an output
    (``*_restored.tif``, ``*_difference.tif``, ``*_figure.png``) and inside the output folder
    (so that ``-o`` may be the input folder or lie inside it), or carrying restore.py's mark
    (the outputs of an earlier run with another ``-o`` inside the input tree)."""
    if not f.name.lower().endswith(OUTPUT_ENDINGS):
        return False
    try:
        if outdir_abs in f.resolve().parents:
            return True
    except (OSError, RuntimeError):
        return False
    return read_set_id(f)[0] is not False


def _scan_folder(p: Path, recursive: bool, outdir_abs: Path, summary: Summary) -> list[tuple[Path, Path]]:
    """Supported files of folder ``p`` as (file, folder relative to ``p``).

    Our own outputs and temporary files are skipped; supported names that are
    not regular files (FIFO, broken link, link loop, no permission) and
    sub-folders that cannot be listed are reported as failures.
    """
    found = []
    for f, is_dir in sorted(_listing(p, recursive, summary)):
        if is_dir or not is_supported(f) or is_temp_output(f):
            continue
        problem = path_problem(f)
        if problem:
            summary.failed.append((f, problem))
            continue
        if is_own_output(f, outdir_abs):
            continue
        found.append((f, f.parent.relative_to(p)))
    return found


def _folder(p: Path) -> Path:
    """``p`` as an absolute path, ``..`` taken out by name, links not followed: the folder as the
    user named it (a linked file's outputs go where the link is, not where its target is)."""
    return Path(os.path.normpath(os.path.abspath(p)))


def collect_jobs(inputs: list[str], outdir: Path, recursive: bool,
                 summary: Summary) -> list[Job]:
    """Expand files/folders into jobs; record missing or unsupported inputs as failures.

    Outputs go to ``OUTDIR/<folder relative to the input folder>/<stem>_*``.  Where two inputs
    from different folders would get the same output names (``run1/HAADF.tif run2/HAADF.tif``,
    or two input folders holding ``frame001.tif``), each goes under the name of the folder it
    came from (``OUTDIR/run1/``, ``OUTDIR/run2/``; ``OUTDIR/day1/a/`` for ``day1/a/x.tif`` of an
    input folder ``day1`` beside ``day2/a/x.tif`` with ``--recursive``); where one folder holds the same stem with
    different suffixes (``a.tif``, ``a.dm4``), the suffix is kept (``a_tif_*``, ``a_dm4_*``).
    """
    outdir_abs = outdir.resolve()
    found: list[tuple[Path, Path, str]] = []  # (file, relative dir, name of the folder it came from)
    for arg in inputs:
        p = Path(arg)
        problem = path_problem(p)
        if problem:
            summary.failed.append((p, problem))
        elif p.is_dir():
            n_failed = len(summary.failed)
            files = _scan_folder(p, recursive, outdir_abs, summary)
            if not files and len(summary.failed) == n_failed:
                hint = "" if recursive else " (--recursive searches sub-folders)"
                summary.failed.append((p, f"folder has no supported image files{hint}"))
            found.extend((f, rel, _folder(p).name) for f, rel in files)
        elif not is_supported(p):
            summary.failed.append((p, f"unsupported file type {p.suffix or '(no suffix)'!r} "
                                      f"(supported: {' '.join(sorted(SUPPORTED_SUFFIXES))})"))
        elif is_temp_output(p):
            summary.failed.append((p, "a temporary file of an interrupted restore.py run, not an input"))
        else:
            found.append((p, Path("."), _folder(p.parent).name))
    # The same file given twice (or through a folder and by name) is one job.
    unique: dict[Path, tuple[Path, Path, str]] = {}
    for f, rel, origin in found:
        unique.setdefault(f.resolve(), (f, rel, origin))
    found = list(unique.values())
    # Same stem from different folders: each under the name of the folder it came from.
    folders: dict[tuple[Path, str], set[Path]] = {}
    for f, rel, _ in found:
        folders.setdefault((rel, f.stem.lower()), set()).add(_folder(f.parent))
    placed = [(f, Path(origin) / rel if len(folders[(rel, f.stem.lower())]) > 1 and origin else rel)
              for f, rel, origin in found]
    # Same stem with different suffixes in one folder (a.tif, a.dm4): keep the suffix.
    counts: dict[tuple[Path, str], int] = {}
    for f, rel in placed:
        key = (rel, f.stem.lower())
        counts[key] = counts.get(key, 0) + 1
    jobs, seen = [], {}
    for f, rel in placed:
        stem = f.stem if counts[(rel, f.stem.lower())] == 1 else f"{f.stem}_{f.suffix[1:].lower()}"
        key = (rel, stem.lower())
        if key in seen:
            summary.failed.append((f, f"output name {rel / stem}_* already used by {seen[key]} "
                                      f"(rename one of the two, or restore them in separate runs)"))
            continue
        seen[key] = f.resolve()
        jobs.append(Job(f, rel, stem))
    return jobs


def output_names(job: Job, signal_name: str, figure: bool) -> dict[str, Path]:
    base = job.stem + (f"_{signal_name}" if signal_name else "")
    names = {"restored": job.rel_dir / f"{base}_restored.tif",
             "difference": job.rel_dir / f"{base}_difference.tif"}
    if figure:
        names["figure"] = job.rel_dir / f"{base}_figure.png"
    return names


def check_outdir(outdir: Path) -> str | None:
    """Why ``outdir`` cannot be the output folder (a file, under a file, not writable), or None.

    Creates the folder, so that a problem shows before anything is computed.
    """
    if outdir.exists() and not outdir.is_dir():
        return f"-o {outdir}: is a file, not a folder"
    for parent in outdir.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                return f"-o {outdir}: {parent} is a file, not a folder"
            break
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"-o {outdir}: cannot create the folder: {err.strerror or err}"
    if not os.access(outdir, os.W_OK | os.X_OK):
        return f"-o {outdir}: the folder is not writable"
    return None


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that temporary files are removed."""


def _raise_terminated(signum, frame):
    raise Terminated()


def plan_outputs(job: Job, img, figure: bool) -> list[tuple[object, dict[str, Path]]]:
    """(signal, output names) for every signal of an input file."""
    return [(s, output_names(job, s.name, figure)) for s in img.signals]


def claim_outputs(job: Job, plans, summary: Summary) -> None:
    """Reserve a file's output names for this run; :class:`InputError` if another input of the
    run has one of them (a stack's ``scan_0_*`` against a file ``scan_0.tif``), so that neither
    is skipped as "done" nor overwritten by the other."""
    names = [n for _, ns in plans for n in ns.values()]
    for name in names:
        other = summary.claimed.get(str(name).lower())
        if other is not None and other != job.path:
            raise InputError(f"its output {name} is also an output of {other} in this run "
                             f"(rename one of the two, or restore them in separate runs)")
    summary.claimed.update({str(name).lower(): job.path for name in names})


def existing_set(job: Job, plans, outdir: Path, overwrite: bool, summary: Summary, log,
                 sweeper: StaleTemps | None = None) -> bool:
    """Decide about outputs already on disk; True if the file is done (skipped).

    A complete set is skipped (unless ``--overwrite``); an incomplete one
    (interrupted run) is redone, with a warning.  Stale temporary files of
    this tool for these outputs are removed first (``sweeper`` lists each
    output folder once per run).
    """
    sweeper = sweeper or StaleTemps(log)
    paths = [outdir / n for _, names in plans for n in names.values()]
    for folder in sorted({p.parent for p in paths}):
        for stale in sweeper.remove(folder, {p.name for p in paths}):
            log(f"warning: removed a temporary file of an interrupted run: {stale}")
    status, why = set_status(paths)
    if status == "complete" and not overwrite:
        summary.skipped.append((job.path, f"output exists: {paths[0]}"))
        return True
    if status == "foreign" and not overwrite:
        summary.skipped.append((job.path, f"output exists: {why}"))
        return True
    if status == "incomplete":
        log(f"warning: {job.path}: incomplete outputs of an interrupted run ({why}); restoring again")
    return False


def restore_signal(signal, restorer: Restorer, job: Job) -> tuple[np.ndarray, np.ndarray, list]:
    """Restored frames (float32), raw frames and per-frame statistics of one signal
    (:func:`restoration.api.restore_frames`, as ``restoration.restore`` does)."""
    frames = signal.frames()
    restored, stats = restore_frames(restorer, frames, progress=False)
    return restored, frames, stats


def difference_image(frames: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """``raw - restored`` as float32; :class:`InputError` if it does not fit float32 (raw
    and restored near float32's limit with opposite signs overflow to infinity)."""
    with np.errstate(over="ignore", invalid="ignore"):
        difference = np.subtract(frames, restored, dtype=np.float32)
    bad = difference.size - int(np.count_nonzero(np.isfinite(difference)))
    if bad:
        raise InputError(f"the difference raw - restored has {bad} infinite or NaN value(s) "
                         f"(values too close to float32's limit); nothing written")
    return difference


def interrupt_note(summary: Summary) -> str:
    """What an interruption left of the file in progress, read from the disk: no outputs,
    or some of its set renamed into place (an incomplete set that a rerun redoes)."""
    if summary.in_progress is None:
        return "no file was in progress"
    if summary.writing is not None:
        finals, set_id = summary.writing
        renamed = [f for f in finals if f.is_file() and read_set_id(f)[1] == set_id]
        if renamed:
            return (f"the file in progress ({summary.in_progress}) left {len(renamed)} of its "
                    f"{len(finals)} outputs, an incomplete set that the rerun redoes")
    return f"the file in progress ({summary.in_progress}) left no outputs"


def restore_file(job: Job, restorer: Restorer, outdir: Path, args, provenance: dict,
                 summary: Summary, log, sweeper: StaleTemps | None = None) -> None:
    """Restore one input file and write its whole output set (or nothing)."""
    summary.in_progress, summary.writing = job.path, None
    img = read_image(job.path)
    for note in img.warnings:
        log(f"warning: {job.path}: {note}")
    plans = plan_outputs(job, img, args.figure)
    claim_outputs(job, plans, summary)
    if existing_set(job, plans, outdir, args.overwrite, summary, log, sweeper):
        return
    set_id = uuid.uuid4().hex
    finals = [outdir / n for _, names in plans for n in names.values()]
    summary.writing = (finals, set_id)
    # every output under a temporary name; all renamed at the end (restored first)
    with output_set(finals) as temps:
        def temp(name: Path) -> Path:
            return temps[outdir / name]

        for signal, names in plans:
            restored, frames, stats = restore_signal(signal, restorer, job)
            info = dict(provenance)
            info.update({
                "source": str(job.path.resolve()),
                "source_format": img.reader,
                "source_dtype": str(signal.data.dtype),
                "signal": signal.name,
                "signal_title": signal.title,
                "frame_shape": list(frames.shape[1:]),
                "stack_shape": list(signal.stack_shape),
                "pixel_size": signal.pixel_size.as_dict() if signal.pixel_size else None,
                "norm_stats": stats,
                "warnings": img.warnings,
                "output_set": set_id,
            })
            difference = difference_image(frames, restored)
            write_tiff(temp(names["restored"]), restored, signal.stack_shape, signal.pixel_size,
                       dict(info, kind="restored"), atomic=False)
            write_tiff(temp(names["difference"]), difference, signal.stack_shape, signal.pixel_size,
                       dict(info, kind="difference = raw - restored"), atomic=False)
            del difference  # keep peak memory at ~4 image-sized float32 arrays + the net (+2 with --self-ensemble)
            if args.figure:
                title = str(job.path)
                if signal.n_frames > 1:
                    title += f"  (frame 1 of {signal.n_frames})"
                write_figure(temp(names["figure"]), frames[0], restored[0], title, signal.pixel_size,
                             set_id=set_id, atomic=False)
    summary.restored.append(job.path)


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, where ``--align-rows`` (an optional value) does not eat an input:
    in ``--align-rows frame.tif`` argparse takes the file name for the option's value, and a value
    without ``=`` is no ``key=value`` list, so it goes back to the inputs (in command-line order)
    and the option keeps its defaults."""
    args = parser.parse_args(argv)
    if isinstance(args.align_rows, str) and "=" not in args.align_rows:
        args.inputs.append(args.align_rows)
        args.align_rows = True
        first = {}
        for i, token in enumerate(argv):
            first.setdefault(token, i)
        args.inputs.sort(key=lambda token: first.get(token, len(argv)))
    if not args.inputs:
        parser.error("the following arguments are required: INPUT")
    return args


def main(argv: list[str] | None = None) -> int:
    """restore.py; exit status 0 (all restored or skipped), 1 (some file failed), 2 (nothing
    could start), 130 (Ctrl-C) or 143 (SIGTERM): interrupted runs leave no partial files."""
    parser = build_parser()
    args = parse_args(parser, sys.argv[1:] if argv is None else list(argv))
    from tqdm import tqdm

    def log(msg: str) -> None:
        tqdm.write(msg, file=sys.stderr)

    summary = Summary()
    previous = signals.signal(signals.SIGTERM, _raise_terminated)
    try:
        return run(args, summary, log)
    except (KeyboardInterrupt, Terminated) as err:
        what = "Ctrl-C" if isinstance(err, KeyboardInterrupt) else "SIGTERM"
        log(f"interrupted ({what}): {len(summary.restored)} file(s) restored before; "
            f"{interrupt_note(summary)}. Rerun the same command to finish (finished files are "
            f"skipped).")
        return 130 if isinstance(err, KeyboardInterrupt) else 143
    finally:
        signals.signal(signals.SIGTERM, previous)


def run(args, summary: Summary, log) -> int:
    """The body of :func:`main`: checks, model, one job per file, summary."""
    files = preflight(args, log)
    if files is None:
        return 2
    jobs = collect_jobs(args.inputs, args.outdir, args.recursive, summary)
    for path, reason in summary.failed:
        log(f"error: {path}: {reason}")
    restorer = provenance = None
    if jobs:  # no Caffe start-up when there is nothing to restore
        try:
            restorer, provenance = load_restorer(args, *files)
        except ModelError as err:
            log(f"error: {err}")
            return 2
    elapsed = restore_jobs(jobs, restorer, args, provenance, summary, log)
    return report_summary(summary, args.outdir, elapsed, log)


def preflight(args, log) -> tuple[Path, Path] | None:
    """Everything checked before any image is read: the model files and options exist and are
    sane (before the output folder is created), the output folder, the model's validity
    (before Caffe sees it) and the GPU.  Returns (model, weights), or None after logging why
    the run cannot start."""
    try:
        model, weights = model_files(args.model, args.weights)
        check_tile(args.tile)
        check_engine(args.engine)
        align_option(args.align_rows)
        _raise_if(check_outdir(args.outdir))
        validate_model(model, weights)
        _raise_if(check_gpu(args.gpu))
    except (ModelError, ValueError) as err:
        log(f"error: {err}")
        return None
    return model, weights


def _raise_if(problem: str | None) -> None:
    """Raise ValueError(problem) for a check that returns its problem as a string (or None)."""
    if problem:
        raise ValueError(problem)


def load_restorer(args, model: Path, weights: Path) -> tuple[Restorer, dict]:
    """The restorer and the provenance written into every output (:class:`restoration.api.Model`:
    Caffe's trial load in a child process, then the net); :class:`ModelError` if it fails."""
    net = Model(model, weights, gpu=args.gpu, tile=args.tile, engine=args.engine,
                align_rows=args.align_rows, self_ensemble=args.self_ensemble, checked=True)
    return net.restorer, net.provenance("stem-restore restore.py")


def restore_jobs(jobs: list[Job], restorer: Restorer | None, args, provenance: dict | None,
                 summary: Summary, log) -> float:
    """Restore every job with a progress bar; a failing file is recorded in ``summary`` and
    logged, and the others go on.  Returns the seconds taken."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    sweeper = StaleTemps(log)  # each output folder is listed once, not once per file
    for job in tqdm(jobs, unit="file", desc="restoring", file=sys.stderr, disable=None):
        try:
            restore_file(job, restorer, args.outdir, args, provenance, summary, log, sweeper)
        except InputError as err:
            summary.failed.append((job.path, str(err)))
            log(f"error: {job.path}: {err}")
        except Exception as err:  # an output could not be written, etc.
            reason = f"{type(err).__name__}: {' '.join(str(err).split())}"
            summary.failed.append((job.path, reason))
            log(f"error: {job.path}: {reason}")
        summary.in_progress, summary.writing = None, None  # between files
    return time.perf_counter() - t0


def report_summary(summary: Summary, outdir: Path, elapsed: float, log) -> int:
    """Log the skipped files, the counts and the failed files; the exit status (1 if any failed)."""
    for path, reason in summary.skipped:
        log(f"skipped: {path}: {reason} (use --overwrite to replace)")
    log(f"summary: {len(summary.restored)} restored, {len(summary.skipped)} skipped, "
        f"{len(summary.failed)} failed ({elapsed:.1f} s); outputs in {outdir}")
    if summary.failed:
        log("failed files:")
        for path, reason in summary.failed:
            log(f"  {path}: {reason}")
        return 1
    return 0
