"""Deprecated alias of :mod:`cai.worlds.multigoal` (moved in 0.2; removed in 0.3)."""
from cai._compat import moved

moved(__name__, "cai.worlds.multigoal")
