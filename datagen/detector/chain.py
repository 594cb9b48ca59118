"""The detector chain as data: one ordered list of (preset family, effect class).

Modelled on abTEM's ``noise.py``: each physical effect is one small object
with named physical parameters.  Every effect class here

* declares where it acts, ``acts_on``: on expected or counted detected
  electrons (:data:`COUNTS`) or on ADC levels (:data:`ADC`);
* builds itself from its family's preset section,
  ``from_preset(section, rng, acq)``, drawing its parameters with
  :func:`datagen.params.draw` from that family's random stream;
* is called as ``effect(signal, rng)`` and is an exact identity at zero
  strength.

:data:`CHAIN` is the physical signal path of an annular dark-field detector
(scintillator, photomultiplier, amplifier, ADC).  The electrons are converted
to ADC levels once, by :meth:`DetectorResponse.to_adc`, between the last
:data:`COUNTS` effect and the first :data:`ADC` effect.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..params import draw
from ..scan.timing import ScanTiming
from .lag import DetectorLag
from .outliers import DeadPixels, Zingers
from .pmt import PMTGainNoise
from .quantisation import Quantiser
from .readout import ReadoutNoise
from .response import ADC, COUNTS, DetectorResponse
from .row_offsets import RowOffsets
from .shot_noise import ShotNoise

#: Detector effects in signal-path order, each with the preset family that
#: holds its parameters and switches it on.  A family may own several effects
#: (``pmt_readout``: PMT gain noise on electrons, readout noise on ADC levels).
CHAIN = (
    ("shot_noise", ShotNoise),        # Poisson, electrons
    ("pmt_readout", PMTGainNoise),    # multiplicative pulse-height noise
    ("detector_lag", DetectorLag),    # scintillator afterglow, fast-scan smear
    # --- response.to_adc: gain * counts + dark ---
    ("pmt_readout", ReadoutNoise),    # amplifier noise, ADC levels
    ("row_offsets", RowOffsets),      # per-line offset and gain
    ("outliers", Zingers),            # bright isolated pixels
    ("outliers", DeadPixels),         # pixels reading 0
    ("quantisation", Quantiser),      # clip to the ADC range, round
)

#: Signal domains in the order the chain passes through them.
DOMAINS = (COUNTS, ADC)


def check_chain(chain) -> None:
    """Raise ValueError unless every effect's domain is in :data:`DOMAINS` and every
    :data:`COUNTS` effect precedes every :data:`ADC` effect (one conversion)."""
    ranks = []
    for family, cls in chain:
        if cls.acts_on not in DOMAINS:
            raise ValueError(f"{cls.__name__} ({family}) acts on {cls.acts_on!r}, not one of {DOMAINS}")
        ranks.append(DOMAINS.index(cls.acts_on))
    if ranks != sorted(ranks):
        raise ValueError("detector chain: an effect on counts follows one on ADC levels")


check_chain(CHAIN)


@dataclass(frozen=True)
class Acquisition:
    """Settings of one acquisition that detector effects may depend on.

    Parameters
    ----------
    response : DetectorResponse
        Mean response: dose, gain (ADC levels per electron), dark level.
    timing : ScanTiming
        Dwell and flyback times (seconds), for the afterglow.
    adc_bits : int
        ADC bit depth.
    """

    response: DetectorResponse
    timing: ScanTiming
    adc_bits: int

    @classmethod
    def from_preset(cls, detector: dict, scan: dict, detector_rng: np.random.Generator,
                    scan_rng: np.random.Generator) -> Acquisition:
        """Draw from ``[detector]`` (``adc_bits``, ``dose_counts``,
        ``peak_fraction_of_full_scale``, ``dark_offset_fraction_of_full_scale``, in this
        order) and ``[scan]`` (``dwell_time_us``, ``flyback_time_us``, microseconds)."""
        adc_bits = int(draw(detector, "adc_bits", detector_rng))
        response = DetectorResponse.from_settings(
            draw(detector, "dose_counts", detector_rng), adc_bits,
            draw(detector, "peak_fraction_of_full_scale", detector_rng),
            draw(detector, "dark_offset_fraction_of_full_scale", detector_rng))
        timing = ScanTiming(draw(scan, "dwell_time_us", scan_rng) * 1e-6,
                            draw(scan, "flyback_time_us", scan_rng) * 1e-6)
        return cls(response, timing, adc_bits)


def build_chain(preset: dict, rngs: dict, acq: Acquisition) -> list[tuple[str, object]]:
    """``[(family, effect)]``: every effect of :data:`CHAIN` built from ``preset[family]`` with
    ``rngs[family]``, in chain order.

    Every effect is built, active or not, and before any of them acts: a family's
    parameters are the first draws of its stream after its on/off draw (switching
    families never changes another family's realisation).
    """
    return [(family, cls.from_preset(preset[family], rngs[family], acq)) for family, cls in CHAIN]


def apply_chain(effects, image: np.ndarray, response: DetectorResponse, active: dict,
                rngs: dict) -> np.ndarray:
    """ADC levels recorded for a normalised ``image``: the expected counts
    ``dose * image`` through the active :data:`COUNTS` effects, ``gain * counts + dark``,
    then the active :data:`ADC` effects, each with its family's stream."""
    counts = _apply(effects, COUNTS, response.expected_counts(image), active, rngs)
    return _apply(effects, ADC, response.to_adc(counts), active, rngs)


def _apply(effects, domain: str, signal: np.ndarray, active: dict, rngs: dict) -> np.ndarray:
    """``signal`` through the active effects acting on ``domain``, in chain order."""
    for family, effect in effects:
        if effect.acts_on == domain and active[family]:
            signal = effect(signal, rngs[family])
    return signal
