"""Deprecated alias of :mod:`cai.algorithms.tabular.soft_q` (moved in 0.2; removed in 0.3)."""
from cai._compat import moved

moved(__name__, "cai.algorithms.tabular.soft_q")
