"""Write the bundled example micrographs: simulated, so freely redistributable.

    python scripts/make_examples.py                    # writes examples/*.tif
    python scripts/make_examples.py --score restored   # PSNR of raw and restored vs the clean truth

Each file is one distorted 256x256 frame from datagen's "paper" preset (the
full distortion mix) as float32 TIFF in ADC levels, with its pixel size in the
TIFF resolution tags; the clean target lies beside it in examples/clean/ so
that a restored example can be compared with the truth.  Fixed seed: the same
files every time.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import tifffile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from datagen.pipeline import sample_rng, simulate

HERE = pathlib.Path(__file__).resolve().parents[1] / "examples"
SEED = 2026
COUNT = 4
SIZE = 256


def score(restored_dir: pathlib.Path) -> None:
    """Print PSNR (dB, evaluate.metrics.psnr) of each raw and restored example against its clean truth."""
    from evaluate.metrics import psnr

    raws, outs = [], []
    for i in range(COUNT):
        clean = tifffile.imread(HERE / "clean" / f"example_{i}.tif")
        raws.append(psnr(tifffile.imread(HERE / f"example_{i}.tif"), clean))
        outs.append(psnr(tifffile.imread(restored_dir / f"example_{i}_restored.tif"), clean))
        print(f"example_{i}: raw {raws[-1]:.1f} dB -> restored {outs[-1]:.1f} dB")
    print("raw " + " / ".join(f"{v:.1f}" for v in raws) + " dB -> restored " + " / ".join(f"{v:.1f}" for v in outs) + " dB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--score", type=pathlib.Path, metavar="RESTORED_DIR",
                    help="instead of writing: score restore.py's outputs for the examples in RESTORED_DIR")
    args = ap.parse_args()
    if args.score:
        return score(args.score)
    (HERE / "clean").mkdir(exist_ok=True)
    for i in range(COUNT):
        distorted, clean, info = simulate("paper", SIZE, sample_rng(SEED, i))
        px_cm = info["pixel_size_angstrom"] * 1e-8  # TIFF resolution unit: centimetre
        on = ",".join(f for f, a in info["active"].items() if a)
        for folder, image in ((HERE, distorted), (HERE / "clean", clean)):
            path = folder / f"example_{i}.tif"
            tifffile.imwrite(path, image, resolution=(1 / px_cm, 1 / px_cm), resolutionunit="CENTIMETER",
                             description=f"stem-restore example {i}: datagen paper preset, seed {SEED}; "
                                         f"pixel size {info['pixel_size_angstrom']:.4f} A; families: {on}")
            print(path)


if __name__ == "__main__":
    main()
