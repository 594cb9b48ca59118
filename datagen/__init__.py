"""datagen: physically modelled (distorted, clean) HAADF-STEM training pairs.

Public API::

    from datagen import (FAMILIES, load_preset, family_preset, with_dose,
                         simulate_pair, simulate_pairs, make_training_pair,
                         drift_only_references, scanned_references)

See ``python -m datagen --help`` for the writer CLI (HDF5 / LMDB for Caffe).
"""
from .pipeline import drift_only_references, make_training_pair, scanned_references, simulate_pair, simulate_pairs
from .presets import FAMILIES, family_preset, load_preset, with_dose

__all__ = ["FAMILIES", "load_preset", "family_preset", "with_dose",
           "simulate_pair", "simulate_pairs", "make_training_pair", "drift_only_references",
           "scanned_references"]
