"""The explorer's drawing code, shared by the live view and the exported page (plain JavaScript,
in ``static/explorer.js``; it draws one :meth:`cai.app.model.Frame.to_json` record)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["DRAW_JS"]

#: the JavaScript that defines ``caiExplorerDraw(root, record, {t, methods}, onCell)``
DRAW_JS: str = (Path(__file__).parent / "static" / "explorer.js").read_text(encoding="utf-8")
