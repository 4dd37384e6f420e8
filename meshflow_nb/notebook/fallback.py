"""Showing a widget so that it also reads well where widgets do not render.

Every meshflow widget is displayed as one bundle: the live ipywidgets view (JupyterLab
picks it), plus ``text/html`` and ``text/plain`` renderings of the same state (GitHub,
nbviewer, papermill output and nbval read those). The bundle is shown with a display
id, so when the state settles (a run ends, a gate is decided) the fallbacks are
rewritten in place: an executed notebook shows the final state, not the first one.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any

from IPython.display import DisplayHandle, display


class FallbackDisplay(ABC):
    """Base of the meshflow widgets: subclasses pass their ``widget`` and write `text`/`html`."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        """The ipywidgets container shown where widgets render."""
        self._handles: list[DisplayHandle] = []
        self._handles_lock = threading.Lock()

    @abstractmethod
    def text(self) -> str:
        """The state as plain text."""

    @abstractmethod
    def html(self) -> str:
        """The state as static HTML: no script, nothing fetched."""

    def _bundle(self) -> dict[str, Any]:
        bundle = {"text/plain": self.text(), "text/html": self.html()}
        view = self.widget._repr_mimebundle_()
        bundle["application/vnd.jupyter.widget-view+json"] = (
            view["application/vnd.jupyter.widget-view+json"])
        return bundle

    def _ipython_display_(self) -> None:
        handle = display(self._bundle(), raw=True, display_id=True)
        with self._handles_lock:
            self._handles.append(handle)

    def refresh_fallback(self) -> None:
        """Rewrite the text and HTML of every place this widget is displayed."""
        with self._handles_lock:
            handles = list(self._handles)
        bundle = self._bundle() if handles else None
        for handle in handles:
            handle.update(bundle, raw=True)
