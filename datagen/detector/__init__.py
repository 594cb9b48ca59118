"""Detector chain: from expected electron counts to ADC levels.

The chain is data (:data:`~datagen.detector.chain.CHAIN`): (preset family,
effect class) pairs in the physical signal path of an annular dark-field
detector (scintillator, photomultiplier, amplifier, ADC):

    counts  = ShotNoise(dose * image)           # Poisson, electrons
    counts  = PMTGainNoise(counts)              # multiplicative pulse-height noise
    counts  = DetectorLag(counts)               # scintillator afterglow, fast-scan smear
    adc     = response.to_adc(counts)           # gain * counts + dark offset
    adc     = ReadoutNoise(adc); RowOffsets(adc); Zingers(adc); DeadPixels(adc)
    adc     = Quantiser(adc)                    # clip to the ADC range, round

Each effect class says where it acts (``acts_on``: ``COUNTS`` or ``ADC``) and
builds itself from its preset section (``from_preset(section, rng, acq)``; the
base :class:`~datagen.detector.effect.DetectorEffect` draws ``PRESET_KEYS`` in order).
Every effect with zero strength returns its input unchanged (exact identity).
"""
from .response import ADC, COUNTS, DetectorResponse
from .effect import DetectorEffect
from .shot_noise import ShotNoise
from .pmt import PMTGainNoise
from .lag import DetectorLag
from .readout import ReadoutNoise
from .row_offsets import RowOffsets
from .outliers import DeadPixels, Zingers
from .quantisation import Quantiser
from .chain import CHAIN, DOMAINS, Acquisition, apply_chain, build_chain, check_chain

__all__ = ["DetectorEffect", "DetectorResponse", "ShotNoise", "PMTGainNoise", "DetectorLag", "ReadoutNoise",
           "RowOffsets", "Zingers", "DeadPixels", "Quantiser", "COUNTS", "ADC", "CHAIN", "DOMAINS",
           "Acquisition", "build_chain", "apply_chain", "check_chain"]
