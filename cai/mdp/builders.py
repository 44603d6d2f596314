"""Deprecated alias of :mod:`cai.worlds.builders` (moved in 0.2; removed in 0.3)."""
from cai._compat import moved

moved(__name__, "cai.worlds.builders")
