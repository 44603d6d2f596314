"""``cai explore``: a live explorer of exact inference, soft VI and hard VI on an editable grid world.

:mod:`cai.app.model` is the pure model (world and controls in, every number to draw out; no
browser needed). :mod:`cai.app.view` is the Panel view (needs ``pip install 'control-as-inference[app]'``) and
:mod:`cai.app.export` writes one self-contained HTML page with precomputed solutions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from cai.app.model import Controls, Frame, GridWorldSpec, check_controls, check_layout, edit_layout, solve, spec_from_mdp

if TYPE_CHECKING:
    from cai.mdp.tabular import TabularMDP

__all__ = ["Controls", "Frame", "GridWorldSpec", "check_controls", "check_layout", "edit_layout", "solve",
           "spec_from_mdp", "explore"]


def explore(mdp: Optional[TabularMDP] = None, **kwargs: Any) -> Any:
    """The explorer as a Panel object, for a notebook cell (or ``.servable()``).

    Args:
        mdp: a grid world (:func:`cai.worlds.gridworld`, a registry grid world, a loaded layout);
            default the registry's ``demo`` world.
        **kwargs: passed to :class:`cai.app.view.Explorer` (``alpha``, ``name``).

    Returns:
        The Panel layout of :class:`cai.app.view.Explorer`.

    Raises:
        ImportError: Panel is not installed (``pip install 'control-as-inference[app]'``).
        ValueError: ``mdp`` is not a finite-horizon grid world.
    """
    import panel as pn

    from cai.app.view import Explorer

    pn.extension()                      # loads Panel's JavaScript into the notebook (harmless elsewhere)
    return Explorer(mdp, **kwargs).panel()
