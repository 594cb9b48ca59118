"""Detector chain: from expected electron counts to ADC levels.

Order (physical signal path of an annular dark-field detector: scintillator,
photomultiplier, amplifier, ADC):

    counts  = ShotNoise(dose * image)           # Poisson, electrons
    counts  = PMTGainNoise(counts)              # multiplicative pulse-height noise
    counts  = DetectorLag(counts)               # scintillator afterglow, fast-scan smear
    adc     = response.to_adc(counts)           # gain * counts + dark offset
    adc     = ReadoutNoise(adc); RowOffsets(adc); Zingers(adc); DeadPixels(adc)
    adc     = Quantiser(adc)                    # clip to the ADC range, round

Every effect with zero strength returns its input unchanged (exact identity).
"""
from .response import DetectorResponse
from .shot_noise import ShotNoise
from .pmt import PMTGainNoise
from .lag import DetectorLag
from .readout import ReadoutNoise
from .row_offsets import RowOffsets
from .outliers import DeadPixels, Zingers
from .quantisation import Quantiser

__all__ = ["DetectorResponse", "ShotNoise", "PMTGainNoise", "DetectorLag", "ReadoutNoise",
           "RowOffsets", "Zingers", "DeadPixels", "Quantiser"]
