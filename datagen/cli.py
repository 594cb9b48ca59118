"""Command line: ``python -m datagen`` (write a data set), ``python -m datagen preview``,
``python -m datagen resolve`` (a preset with its ``extends`` chain written out whole) and
``python -m datagen weight`` (a data set's shards with per-pair loss weights added).

Exit status 0 on success, 2 on bad arguments, a bad preset or an unusable
output folder (with a one-line message naming the problem), 130 on Ctrl-C
(no traceback; finished shards are kept, a rerun resumes).
"""
from __future__ import annotations

import argparse
import sys

from stem_restore.network import RECEPTIVE_FIELD

from .presets import available_presets


def _generate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m datagen",
        description="Write normalised (distorted input, clean target) STEM pairs for Caffe. "
                    "Use 'python -m datagen preview --help' for the preview PNG.")
    p.add_argument("--preset", required=True,
                   help=f"preset name ({', '.join(available_presets())}) or a .toml path")
    p.add_argument("--count", type=int, required=True, help="number of pairs (>= 1)")
    p.add_argument("--size", type=int, default=64,
                   help=f"image edge in pixels (>= {RECEPTIVE_FIELD}, the receptive field; default 64)")
    p.add_argument("--out", required=True, help="output folder (created; resumed if it holds the same run)")
    p.add_argument("--format", choices=("hdf5", "lmdb"), default="hdf5",
                   help="hdf5 (HDF5Data shards + list.txt) or lmdb (input_lmdb + target_lmdb)")
    p.add_argument("--workers", type=int, default=1, help="simulation processes (output identical for any)")
    p.add_argument("--seed", type=int, default=0, help="data set seed (sample i: SeedSequence([seed, i]))")
    p.add_argument("--first", type=int, default=0,
                   help="index of the first sample: write samples FIRST..FIRST+COUNT-1 of the seed's "
                        "stream (default 0; FIRST = d x COUNT is a fresh draw d of the same data set)")
    p.add_argument("--shard-size", type=int, default=None,
                   help="pairs per shard / LMDB transaction (default: ~64 MB per shard)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _preview_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m datagen preview",
                                description="PNG: clean target, each distortion family alone, all families.")
    p.add_argument("--preset", default="paper", help="preset name or .toml path (default paper)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=128,
                   help=f"image edge in pixels (>= {RECEPTIVE_FIELD}; default 128)")
    p.add_argument("--samples", type=int, default=3, help="rows (specimens) in the figure")
    return p


def _resolve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m datagen resolve",
                                description="Write a preset whole (its 'extends' chain resolved) as TOML: "
                                            "what a training run keeps as the data it was trained on.")
    p.add_argument("preset", help="preset name or .toml path")
    p.add_argument("-o", "--out", help="TOML file to write (atomically; default: standard output)")
    return p


def _weight_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m datagen weight",
                                description="Copy a datagen HDF5 folder with per-pair loss weights added "
                                            "(datagen/weights.py), for a training net with weighted=True.")
    p.add_argument("source", help="datagen HDF5 folder (its list.txt)")
    p.add_argument("--out", required=True, help="folder for the weighted shards and their list.txt")
    p.add_argument("--floor-db", type=float, required=True,
                   help="PSNR (dB) at which a pair stops gaining weight (a perfect frame's weight)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="overall size (benchmarks/loss_share.py --floor-db prints the one that keeps "
                        "a model's loss; default 1)")
    return p


def _weight(argv: list[str]) -> int:
    """``python -m datagen weight``: weighted copies of a folder's shards."""
    from .weights import weight_shards

    args = _weight_parser().parse_args(argv)
    try:
        print(weight_shards(args.source, args.out, args.floor_db, args.scale))
    except (ValueError, OSError) as exc:
        return _fail("datagen weight", str(exc))
    return 0


def _resolve(argv: list[str]) -> int:
    """``python -m datagen resolve``: the preset as TOML, to a file or standard output."""
    from .presets import dump_preset, load_preset

    args = _resolve_parser().parse_args(argv)
    try:
        text = dump_preset(load_preset(args.preset))
        if args.out:
            from stem_restore.atomic import atomic_write_text
            atomic_write_text(args.out, text)
        else:
            sys.stdout.write(text)
    except (ValueError, OSError) as exc:
        return _fail("datagen resolve", str(exc))
    return 0


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """``python -m datagen``; Ctrl-C exits with status 130 and one line, no traceback."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("datagen: interrupted (Ctrl-C); finished shards are kept, rerun the same command "
              "to resume", file=sys.stderr)
        return 130


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from .presets import load_preset

    if argv and argv[0] == "resolve":
        return _resolve(argv[1:])
    if argv and argv[0] == "weight":
        return _weight(argv[1:])
    if argv and argv[0] == "preview":
        args = _preview_parser().parse_args(argv[1:])
        prog = "datagen preview"
        try:
            preset = load_preset(args.preset)
            if args.size < RECEPTIVE_FIELD:
                return _fail(prog, f"--size must be >= {RECEPTIVE_FIELD}, got {args.size}")
            if args.samples < 1:
                return _fail(prog, f"--samples must be >= 1, got {args.samples}")
            from .preview import write_preview
            path = write_preview(preset, args.out, seed=args.seed, size=args.size, samples=args.samples)
        except (ValueError, OSError) as exc:
            return _fail(prog, str(exc))
        print(path)
        return 0

    args = _generate_parser().parse_args(argv)
    prog = "datagen"
    from .writers.generate import DatagenError, generate
    try:
        preset = load_preset(args.preset)
        out = generate(preset, args.count, args.size, args.out, fmt=args.format,
                       workers=args.workers, seed=args.seed, shard_size=args.shard_size,
                       progress=not args.quiet, first=args.first)
    except (DatagenError, ValueError) as exc:
        return _fail(prog, str(exc))
    print(out)
    return 0
