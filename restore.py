#!/usr/bin/env python3
"""Restore STEM micrographs with a trained Caffe model.

    python restore.py INPUT... -o OUTDIR [--model models/deploy.prototxt]
        [--weights models/stem_restore.caffemodel] [--gpu N] [--recursive]
        [--figure] [--overwrite] [--tile N]

See ``python restore.py --help`` and :mod:`restoration.cli`.
"""
import sys

from restoration.cli import main

if __name__ == "__main__":
    sys.exit(main())
