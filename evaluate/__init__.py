"""Reproduction checks for stem-restore: metrics, classical baselines, checklists.

``python -m evaluate ...`` runs the evaluation (see :mod:`evaluate.__main__`).
"""
from .metrics import line_shifts, psnr, scan_shift_spread, ssim

__all__ = ["psnr", "ssim", "line_shifts", "scan_shift_spread"]
