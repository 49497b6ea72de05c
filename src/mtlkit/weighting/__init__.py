"""Loss-space task weightings. Each lives in its own file and registers under its stem."""

from mtlkit.weighting._base import StepContext, Weighting, WeightingResult
from mtlkit.weighting.dbmtl import DBMTL
from mtlkit.weighting.dwa import DWA
from mtlkit.weighting.equal import Equal
from mtlkit.weighting.famo import FAMO
from mtlkit.weighting.gls import GLS
from mtlkit.weighting.gradnorm import GradNorm
from mtlkit.weighting.great import GREAT
from mtlkit.weighting.imtll import IMTLL
from mtlkit.weighting.inverse_size import InverseSize
from mtlkit.weighting.rlw import RLW
from mtlkit.weighting.static import Static
from mtlkit.weighting.uncertainty import Uncertainty

__all__ = [
    "DBMTL",
    "DWA",
    "Equal",
    "FAMO",
    "GLS",
    "GradNorm",
    "GREAT",
    "IMTLL",
    "InverseSize",
    "RLW",
    "Static",
    "StepContext",
    "Uncertainty",
    "Weighting",
    "WeightingResult",
]
