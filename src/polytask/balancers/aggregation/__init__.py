"""Gradient-aggregation methods, one module each (formula and paper in each docstring)."""

from __future__ import annotations

from polytask.balancers.aggregation.aligned_mtl import AlignedMTL
from polytask.balancers.aggregation.base import GradientAggregator, GramianAggregator, JacobianAggregator
from polytask.balancers.aggregation.cagrad import CAGrad
from polytask.balancers.aggregation.config import ConFIG
from polytask.balancers.aggregation.dualproj import DualProj
from polytask.balancers.aggregation.excess_mtl import ExcessMTL
from polytask.balancers.aggregation.fairgrad import FairGrad
from polytask.balancers.aggregation.graddrop import GradDrop
from polytask.balancers.aggregation.gradvac import GradVac
from polytask.balancers.aggregation.imtl_g import IMTLG
from polytask.balancers.aggregation.mean_sum import MeanAggregation, SumAggregation
from polytask.balancers.aggregation.mgda import MGDA
from polytask.balancers.aggregation.moco import MoCo
from polytask.balancers.aggregation.nash_mtl import NashMTL
from polytask.balancers.aggregation.pcgrad import PCGrad
from polytask.balancers.aggregation.sdmgrad import SDMGrad
from polytask.balancers.aggregation.upgrad import UPGrad

AGGREGATORS: tuple[type[GradientAggregator], ...] = (
    MeanAggregation, SumAggregation, MGDA, PCGrad, GradVac, GradDrop, CAGrad, IMTLG, NashMTL, AlignedMTL,
    UPGrad, DualProj, FairGrad, ExcessMTL, ConFIG, SDMGrad, MoCo,
)

__all__ = ["AGGREGATORS", "GradientAggregator", "GramianAggregator", "JacobianAggregator"] + [c.__name__ for c in AGGREGATORS]
