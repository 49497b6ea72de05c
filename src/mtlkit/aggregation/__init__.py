"""Gradient-space aggregators: K×P Jacobian -> P-vector. One file per method.

Every method registers under its file stem in :data:`mtlkit._registry.AGGREGATORS`
(``"mgda"``, ``"pcgrad"``, ...); see ``docs/aggregation.md`` for the table of methods, their
papers and the levels they support.
"""

from mtlkit.aggregation._base import Aggregation, Aggregator, GramianWeightedAggregator
from mtlkit.aggregation.aligned_mtl import AlignedMTL
from mtlkit.aggregation.cagrad import CAGrad
from mtlkit.aggregation.config import ConFIG
from mtlkit.aggregation.dualproj import DualProj
from mtlkit.aggregation.fairgrad import FairGrad
from mtlkit.aggregation.graddrop import GradDrop
from mtlkit.aggregation.gradvac import GradVac
from mtlkit.aggregation.imtl_g import IMTLG
from mtlkit.aggregation.krum import Krum
from mtlkit.aggregation.mean import Mean
from mtlkit.aggregation.mgda import MGDA
from mtlkit.aggregation.moco import MoCo
from mtlkit.aggregation.modo import MoDo
from mtlkit.aggregation.nash_mtl import NashMTL
from mtlkit.aggregation.pcgrad import PCGrad
from mtlkit.aggregation.sdmgrad import SDMGrad
from mtlkit.aggregation.trimmed_mean import TrimmedMean
from mtlkit.aggregation.upgrad import UPGrad

__all__ = ["MGDA", "Aggregation", "Aggregator", "AlignedMTL", "CAGrad", "ConFIG", "DualProj",
           "FairGrad", "GradDrop", "GradVac", "GramianWeightedAggregator", "IMTLG", "Krum", "Mean",
           "MoCo", "MoDo", "NashMTL", "PCGrad", "SDMGrad", "TrimmedMean", "UPGrad"]
