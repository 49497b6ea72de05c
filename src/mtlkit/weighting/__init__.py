"""Loss-space task weightings. Each lives in its own file and registers under its stem."""

from mtlkit.weighting._base import StepContext, Weighting, WeightingResult
from mtlkit.weighting.auto_lambda import AutoLambda
from mtlkit.weighting.dbmtl import DBMTL
from mtlkit.weighting.dwa import DWA
from mtlkit.weighting.equal import Equal
from mtlkit.weighting.excess_mtl import ExcessMTL
from mtlkit.weighting.famo import FAMO
from mtlkit.weighting.forum import FORUM
from mtlkit.weighting.gls import GLS
from mtlkit.weighting.gradnorm import GradNorm
from mtlkit.weighting.great import GREAT
from mtlkit.weighting.imtll import IMTLL
from mtlkit.weighting.inverse_size import InverseSize
from mtlkit.weighting.moml import MOML
from mtlkit.weighting.rlw import RLW
from mtlkit.weighting.static import Static
from mtlkit.weighting.stch import STCH
from mtlkit.weighting.uncertainty import Uncertainty

__all__ = [
    "AutoLambda",
    "DBMTL",
    "DWA",
    "Equal",
    "ExcessMTL",
    "FAMO",
    "FORUM",
    "GLS",
    "GradNorm",
    "GREAT",
    "IMTLL",
    "InverseSize",
    "MOML",
    "RLW",
    "Static",
    "STCH",
    "StepContext",
    "Uncertainty",
    "Weighting",
    "WeightingResult",
]
