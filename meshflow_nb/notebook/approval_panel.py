"""The human-in-the-loop panel: the draft, who is asked what, Approve and Reject.

    panel = ApprovalPanel()                       # a person decides with the buttons
    panel = ApprovalPanel(decision=hitl_decision) # papermill: "approve" / "reject"
    handle = wf.start(task, approver=panel)       # the cell returns at once
    panel                                         # shows the gate when the run gets there
    result = await handle                         # a later cell; buttons keep working

The panel is an approver (`meshflow_nb.hitl`). Waiting for a click never blocks the
kernel: the run waits in its own thread, and a cell that awaits the run lets the
kernel keep taking button clicks (ipykernel 7 dispatches widget messages during an
awaiting cell). The gate's timeout ends the wait: the runner cancels it and the
panel says so. With a ``decision`` (a notebook parameter) or ``MESHFLOW_HITL`` set,
nobody is asked: the panel shows the decision and the ledger records it as headless.
"""

from __future__ import annotations

import asyncio
import functools
import html
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import ipywidgets as widgets

from ..hitl.requests import (
    ApprovalConfigError,
    Decision,
    GateRequest,
    content_preview,
    parse_verdict,
)
from .fallback import FallbackDisplay

NOTEBOOK_CHANNEL = "notebook"
"""``channel`` of a decision made with the panel's buttons."""

HEADLESS_CHANNEL = "headless"
"""``channel`` of a decision taken from a parameter or ``MESHFLOW_HITL``."""

DRAFT_CHARS = 4000
"""Characters of the draft shown in the panel; the rest is summarised."""

TEXT_DRAFT_CHARS = 300
"""Characters of the draft in the plain-text rendering (papermill output, nbviewer)."""

DRAFT_STYLE = ("font-family:var(--jp-content-font-family, system-ui, sans-serif);"
               "font-size:13px;line-height:1.5;white-space:normal;word-break:normal;"
               "overflow-wrap:anywhere")
"""The draft reads as prose: proportional font, wrapped between words (a word longer
than the line, such as a URL, may break anywhere rather than overflow)."""

CODE_STYLE = "white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere;margin:0.4em 0"
"""A code block in the draft: JupyterLab's output style breaks words in a ``pre``
anywhere (``word-break: break-all``); this keeps them whole."""

RAW_HTML_NOTE = "<code>[HTML left out]</code>"
"""What the draft shows where its Markdown held raw HTML (never rendered)."""

DRAFT_TAGS = frozenset({
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul"})
"""The only tags the rendered draft keeps."""

DRAFT_ATTRIBUTES = {"a": ["href", "title", "target", "rel"], "ol": ["start"]}
"""The only attributes the rendered draft keeps (no ``style``, no ``on*`` handler)."""

LINK_PROTOCOLS = frozenset({"http", "https", "mailto"})
"""Link schemes a draft may use; any other link (``javascript:``, ``data:``) is text."""


@dataclass
class _Ask:
    """One gate waiting for a click: the question, and the future the run awaits."""

    request: GateRequest
    loop: asyncio.AbstractEventLoop
    answer: asyncio.Future[Decision]


class ApprovalPanel(FallbackDisplay):
    """Approve/Reject buttons for the human gates of a run (an approver).

    ``decision`` ("approve"/"reject") makes it headless, as does ``MESHFLOW_HITL``;
    ``reviewer`` is recorded with a headless decision and prefills the reviewer field
    (default ``MESHFLOW_REVIEWER``).
    """

    def __init__(self, decision: str | None = None, *, reviewer: str | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.headless = _headless_setting(decision, env)
        self.decisions: list[Decision] = []
        self._asks: list[_Ask] = []
        self._shown: GateRequest | None = None
        self._status_text = "No gate has asked yet."
        self._lock = threading.RLock()  # held while a new gate is shown (see `waiting`)
        default_reviewer = reviewer or env.get("MESHFLOW_REVIEWER", "")
        self._headless_reviewer = reviewer or env.get("MESHFLOW_REVIEWER") or "headless"
        self.question = widgets.HTML()
        self.draft = widgets.HTML(layout=widgets.Layout(max_height="260px", overflow="auto"))
        self.reviewer = widgets.Text(value=default_reviewer, description="Reviewer",
                                     placeholder="your name")
        self.reason = widgets.Textarea(description="Reason", placeholder="why (optional)")
        self.approve_button = widgets.Button(description="Approve", button_style="success",
                                             icon="check")
        self.reject_button = widgets.Button(description="Reject", button_style="danger",
                                            icon="times")
        self.status = widgets.HTML()
        self.approve_button.on_click(lambda _: self.decide(True))
        self.reject_button.on_click(lambda _: self.decide(False))
        controls = [] if self.headless else [
            self.reviewer, self.reason, widgets.HBox([self.approve_button, self.reject_button])]
        super().__init__(widgets.VBox([self.question, self.draft, *controls, self.status]))
        self._update()

    @property
    def waiting(self) -> bool:
        """A gate is waiting for a person to click (and the panel already shows it)."""
        with self._lock:
            return bool(self._asks)

    async def __call__(self, request: GateRequest) -> Decision:
        """Ask about ``request``: answer headlessly, or wait for a button."""
        if self.headless is not None:
            approved, source = self.headless
            return self._record(Decision(
                approved, self._headless_reviewer, f"no person present: decision from {source}",
                channel=HEADLESS_CHANNEL, node_id=request.node_id), request)
        loop = asyncio.get_running_loop()
        ask = _Ask(request, loop, loop.create_future())
        with self._lock:
            self._asks.append(ask)
            self._update()  # shown, buttons on, before `waiting` says so
        try:
            return await ask.answer
        except asyncio.CancelledError:  # the gate's timeout (or the run was cancelled)
            self._withdraw(ask, f"No decision on {request.node_id} in time: the gate "
                                "rejects (timeout). The buttons no longer apply.")
            raise

    def decide(self, approved: bool) -> None:
        """What the buttons call: decide the gate shown, in the reviewer's name."""
        reviewer = self.reviewer.value.strip()
        if not reviewer:
            self._say("Type your name in Reviewer first: every decision is recorded with "
                      "the person who made it.")
            return
        with self._lock:
            ask = self._asks.pop(0) if self._asks else None
        if ask is None:
            self._say("No gate is waiting for a decision.")
            return
        decision = Decision(approved, reviewer, self.reason.value.strip(),
                            channel=NOTEBOOK_CHANNEL, node_id=ask.request.node_id)
        ask.loop.call_soon_threadsafe(_settle, ask.answer, decision)
        self._record(decision, ask.request)

    # --- state shown ---------------------------------------------------------------

    def _record(self, decision: Decision, request: GateRequest) -> Decision:
        self.decisions.append(decision)
        self._shown = request
        self._status_text = f"{request.node_id}: {decision.describe()}"
        self._update()
        self.refresh_fallback()
        return decision

    def _withdraw(self, ask: _Ask, message: str) -> None:
        with self._lock:
            if ask in self._asks:
                self._asks.remove(ask)
        self._shown = ask.request
        self._status_text = message
        self._update()
        self.refresh_fallback()

    def _say(self, message: str) -> None:
        self.status.value = f"<i>{html.escape(message)}</i>"

    def _current(self) -> GateRequest | None:
        """The gate on show: the first one waiting, else the last one decided."""
        with self._lock:
            return self._asks[0].request if self._asks else self._shown

    def _update(self) -> None:
        """Show the current gate and enable the buttons while it waits."""
        current, waiting = self._current(), self.waiting
        self.question.value = _question_html(current)
        self.draft.value = _draft_html(current)
        self.approve_button.disabled = self.reject_button.disabled = not waiting
        self.status.value = (f"<b>Waiting for your decision on {html.escape(current.node_id)}"
                             "</b>" if waiting and current else html.escape(self._status_text))

    def text(self) -> str:
        """The gate, the draft's start and the decision, as plain text."""
        current = self._current()
        if current is None:
            return f"Human gate panel: {self._status_text}"
        return (f"{_asker(current)} {current.node_id} ({current.risk_tier.name}, protects "
                f"{', '.join(current.protects) or 'nothing'}): {current.prompt}\n"
                f"Draft: {_draft_text(current.content, TEXT_DRAFT_CHARS)}\n"
                f"Decision: {self._status_text}")

    def html(self) -> str:
        """The gate, the draft and the decision as static HTML (no buttons)."""
        current = self._current()
        return (_question_html(current) + _draft_html(current)
                + f"<p><b>{html.escape(self._status_text)}</b></p>")


def _headless_setting(decision: str | None, env: Mapping[str, str]) -> tuple[bool, str] | None:
    """(approved, where it came from) when nobody is to be asked, else None."""
    if decision is not None:
        return _verdict(decision, "decision"), f"the notebook's decision={decision.strip()!r}"
    setting = env.get("MESHFLOW_HITL")
    if setting is None or not setting.strip():
        return None
    return _verdict(setting, "MESHFLOW_HITL"), f"MESHFLOW_HITL={setting.strip()}"


def _verdict(value: str, name: str) -> bool:
    """`parse_verdict`, with the panel's fix: unset means the buttons decide (the
    engine's own fix would suggest ``store``, which the panel does not wait on)."""
    try:
        return parse_verdict(value, name)
    except ApprovalConfigError as err:
        raise ApprovalConfigError(
            err.message, field=name,
            fix=f"set {name} to 'approve' or 'reject', or leave it unset to decide with "
                "the buttons") from None


def _settle(future: asyncio.Future[Decision], decision: Decision) -> None:
    if not future.done():
        future.set_result(decision)


ASKERS = {"gate": "Human gate", "risk_tier": "Risky node", "uncertainty": "Unsure agent"}
"""How the panel titles a request, by why it asks (`GateRequest.reason`)."""


def _asker(request: GateRequest) -> str:
    """What is asking, and why: a human gate, a risky node or an unsure agent."""
    return ASKERS.get(request.reason, "Human gate")


def _question_html(request: GateRequest | None) -> str:
    if request is None:
        return "<b>Human gate</b>: no gate has asked yet."
    timeout = f", times out after {request.timeout_s:g} s" if request.timeout_s else ""
    protects = ", ".join(request.protects) or "nothing"
    return (f"<b>{_asker(request)} {html.escape(request.node_id)}</b> &mdash; risk tier "
            f"<b>{request.risk_tier.name}</b>, protects {html.escape(protects)}{timeout}"
            f"<br>{html.escape(request.prompt)}")


def _draft_html(request: GateRequest | None) -> str:
    if request is None:
        return ""
    body = render_markdown(_draft_text(request.content))
    return f"<div class='meshflow-draft' style='{DRAFT_STYLE}'>{body}</div>"


@functools.lru_cache(maxsize=32)
def render_markdown(text: str) -> str:
    """The draft's Markdown as sanitised HTML: what a reviewer reads, and nothing that
    runs (no script, no event handler, no ``javascript:`` link, no raw HTML, no image
    fetched from elsewhere)."""
    import bleach  # here, not at the top: importing the package stays light

    rendered = _markdown()(text)
    clean = bleach.clean(rendered, tags=DRAFT_TAGS, attributes=DRAFT_ATTRIBUTES,
                         protocols=LINK_PROTOCOLS, strip=True, strip_comments=True)
    return clean.replace("<pre>", f"<pre style='{CODE_STYLE}'>")


@functools.cache
def _markdown() -> Callable[[str], str]:
    """The Markdown parser drafts are rendered with (built once, on first use)."""
    import mistune

    class DraftRenderer(mistune.HTMLRenderer):
        """HTML that leaves raw HTML out, shows images as links, opens links in a new tab."""

        def inline_html(self, html: str) -> str:
            return RAW_HTML_NOTE

        def block_html(self, html: str) -> str:
            return f"<p>{RAW_HTML_NOTE}</p>\n"

        def link(self, text: str, url: str, title: str | None = None) -> str:
            return _link_html(text, url, title)

        def image(self, text: str, url: str, title: str | None = None) -> str:
            return _link_html(f"[image: {text or url}]", url, title)

    return mistune.create_markdown(renderer=DraftRenderer(escape=False),
                                   plugins=["strikethrough", "table", "url"])


def _link_html(text: str, url: str, title: str | None) -> str:
    """A link that opens in a new tab (not over JupyterLab); a link of any other scheme
    than `LINK_PROTOCOLS` is left as its text."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return text
    if scheme not in LINK_PROTOCOLS:
        return text
    extra = f" title='{html.escape(title, quote=True)}'" if title else ""
    return (f"<a href='{html.escape(url, quote=True)}'{extra} target='_blank' "
            f"rel='noopener noreferrer'>{text}</a>")


def _draft_text(content: object, limit: int = DRAFT_CHARS) -> str:
    """The draft as a reviewer reads it (`content_preview`), saying when it is cut."""
    text, cut = content_preview(content, limit)
    return f"{text}… (the first {limit} characters)" if cut else text
