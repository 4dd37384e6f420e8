"""Drive a real JupyterLab in headless Chromium from pytest, to test notebooks as students see them.

Fixtures
--------
``jupyterlab`` (session)
    A JupyterLab server on 127.0.0.1, started with ``sys.executable -m jupyter lab`` in a fresh
    temp dir. Its config, data, runtime, settings and workspace dirs are private to the run, so
    nothing of the user's Jupyter setup leaks in, and everything that would reach the internet
    (news, update checks, extension manager listings) is turned off. Copy notebooks into
    ``jupyterlab.root_dir``; paths given to the helpers are relative to it.
``chromium_browser`` (session)
    Debian's Chromium (``/usr/bin/chromium``, or ``$MESHFLOW_CHROMIUM``), headless, via Playwright.
``lab_page`` (function)
    A fresh browser context with JupyterLab loaded and logged in. On a test failure it saves a
    screenshot, the page's console log and the server log tail, and prints where. At teardown it
    shuts down the kernels the test started, so tests stay independent.

Helpers (all take the page and act on the notebook in the current JupyterLab tab)
-------
``open_notebook``, ``run_all_cells``, ``wait_for_kernel_idle``, ``wait_for_output_text``,
``output_text``, ``wait_for_widgets``, ``click_widget_button``, ``fill_widget_text``,
``notebook_locator`` and the generic ``wait_until``. Timeouts are in seconds and only guard
against hanging; a helper that runs out of time fails with an AssertionError that says what it
was waiting for and what it saw instead.

Use from a test module or conftest with ``pytest_plugins = ["jupyterlab_browser"]`` (the tests
dir is on ``sys.path`` because its conftest sits there without an ``__init__.py``).

PYTEST_DONT_REWRITE: the helpers raise their own AssertionErrors, so this module needs no assert
rewriting; the marker also keeps pytest from warning when a test module imports the helpers
before its ``pytest_plugins`` line registers this module as a plugin.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    Route,
    sync_playwright,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

CHROMIUM = os.environ.get("MESHFLOW_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT = 60.0  # seconds; a healthy server answers in a few seconds
SERVER_STOP_TIMEOUT = 15.0
LAB_LOAD_TIMEOUT = 60.0  # first page load of JupyterLab: many JS chunks on a small machine
UI_TIMEOUT = 30.0  # default guard for one UI step (a kernel start, a cell run, a click)
WIDGET_MANAGER_PLUGIN = "@jupyter-widgets/jupyterlab-manager:plugin"
LOCAL_URL = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost)(:\d+)?/|^(data|blob|about):")

# Server traits on the command line, which beats every config file on the machine.
# news_url=None and NeverCheckForUpdate: the server never fetches the Jupyter news feed or PyPI;
# extension_manager=readonly: no PyPI search or listings from the extension manager.
OFFLINE_TRAITS = {
    "LabApp.news_url": "None",
    "LabApp.check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate",
    "LabApp.extension_manager": "readonly",
}

# Browser-side plugins and settings, written into the run's private dirs.
# The announcements plugin is the one that polls news and updates; disabling it also removes
# its "Would you like to receive official Jupyter news?" toast, which can cover buttons.
PAGE_CONFIG = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,  # no toasts popping over the notebook
    },
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
    # "none" keeps every cell in the DOM, so output helpers see the whole notebook
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # never write the notebook under test back to disk behind the test's back
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}

# In-page helpers, installed as window.__labTest; the Python helpers below call into them.
PAGE_HELPERS_JS = r"""
(() => {
  if (window.__labTest) return;
  const runs = {};
  const app = () => {
    if (!window.jupyterapp) {
      throw new Error('window.jupyterapp is missing: start JupyterLab with '
                      + '--LabApp.expose_app_in_browser=True');
    }
    return window.jupyterapp;
  };
  const notebook = () => {
    const w = app().shell.currentWidget;
    if (!w || !w.sessionContext || !w.content || !w.content.model) {
      throw new Error('the current JupyterLab tab is not a notebook (open one first)');
    }
    return w;
  };
  const kernel = () => notebook().sessionContext.session?.kernel ?? null;
  const busyReasons = () => {
    const panel = notebook();
    const reasons = [];
    const run = runs[panel.id];
    if (run && !run.settled) reasons.push('run-all still executing');
    const k = kernel();
    if (!k) reasons.push('no kernel');
    else {
      if (k.status !== 'idle') reasons.push(`kernel status is ${k.status}`);
      if (k.connectionStatus !== 'connected') {
        reasons.push(`kernel connection is ${k.connectionStatus}`);
      }
      // Requests the page sent (cell runs, widget comm messages) whose reply/idle has not come
      // back. Private API of @jupyterlab/services (flag IsDone = 4); skipped if it changes.
      const futures = k._futures ? [...k._futures.values()] : [];
      const open = futures.filter(f => typeof f._status === 'number' && !(f._status & 4));
      if (open.length) {
        const types = open.map(f => f.msg?.header?.msg_type).join(', ');
        reasons.push(`${open.length} kernel request(s) unanswered (${types})`);
      }
    }
    const prompts = [...panel.node.querySelectorAll('.jp-InputPrompt')];
    const queued = prompts.filter(p => p.textContent.includes('[*]')).length;
    if (queued) reasons.push(`${queued} cell(s) show [*]`);
    return reasons;
  };
  const runAll = () => {
    const panel = notebook();
    const run = runs[panel.id] = {settled: false, ok: null, error: null};
    app().commands.execute('notebook:run-all-cells').then(
      ok => { run.ok = ok; run.settled = true; },
      err => { run.error = String(err); run.settled = true; });
  };
  const outputText = () => [...notebook().node.querySelectorAll('.jp-OutputArea-output')]
    .filter(n => !n.parentElement.closest('.jp-OutputArea-output'))
    .map(n => n.innerText).join('\n');
  const dialogText = () => [...document.querySelectorAll('.jp-Dialog')]
    .map(d => d.innerText.trim()).join('\n---\n');
  const widgetsPlugin = id => ({known: app().hasPlugin(id), active: app().isPluginActivated(id)});
  window.__labTest = {app, notebook, kernel, busyReasons, runAll, runs, outputText, dialogText,
                      widgetsPlugin};
})();
"""


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


@dataclass
class JupyterLabServer:
    """A running JupyterLab: where it serves, its token, and the dir it serves notebooks from."""

    base_dir: Path
    root_dir: Path
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    base_url: str = ""

    def url(self, path: str = "lab") -> str:
        """Absolute URL of ``path`` on the server (``lab``, ``lab/tree/x.ipynb``, ``api/...``)."""
        return f"{self.base_url}{path.lstrip('/')}"

    def login_url(self, path: str = "lab") -> str:
        """URL that logs the browser in with the token (it sets the auth cookie) and opens path."""
        sep = "&" if "?" in path else "?"
        return f"{self.url(path)}{sep}token={self.token}"

    def api(self, method: str, path: str, timeout: float = 10.0) -> Any:
        """Call the REST API with the token; returns the decoded JSON body, or None if empty.

        Proxies from the environment are ignored: the server is always on 127.0.0.1.
        """
        request = urllib.request.Request(
            self.url(path), method=method, headers={"Authorization": f"token {self.token}"}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the server's combined stdout/stderr, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as err:
            return f"(no server log: {err})"
        return "\n".join(text.splitlines()[-lines:])

    def add_file(self, source: Path, name: str | None = None) -> str:
        """Copy a notebook (or data file) into the server root; returns its path for the helpers.

        Only the file is copied: files it reads by relative path must be added too.
        """
        target = self.root_dir / (name or source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target.relative_to(self.root_dir).as_posix()

    def shutdown_kernels(self) -> None:
        """Delete every session (which shuts its kernel down), so the next test starts clean."""
        for session in self.api("GET", "api/sessions"):
            with contextlib.suppress(urllib.error.HTTPError):
                self.api("DELETE", f"api/sessions/{session['id']}")


def _private_dirs(base: Path) -> dict[str, Path]:
    """Create the run's own root, config, data, runtime, settings, workspace and IPython dirs."""
    names = ("root", "config", "data", "runtime", "settings", "workspaces", "ipython")
    dirs = {name: base / name for name in names}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    return dirs


def _write_offline_settings(dirs: dict[str, Path]) -> None:
    """Write the page config (disabled plugins) and the user settings that keep JupyterLab quiet."""
    labconfig = dirs["config"] / "labconfig"
    labconfig.mkdir(exist_ok=True)
    (labconfig / "page_config.json").write_text(json.dumps(PAGE_CONFIG, indent=2))
    for plugin, values in USER_SETTINGS.items():
        path = dirs["settings"] / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))


def _server_env(dirs: dict[str, Path], token: str) -> dict[str, str]:
    """The environment for the server and its kernels: no inherited Jupyter/IPython settings."""
    inherited = ("JUPYTER", "JPY_", "IPYTHON")
    env = {key: value for key, value in os.environ.items() if not key.startswith(inherited)}
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
        IPYTHONDIR=str(dirs["ipython"]),  # no user IPython profile or startup files in kernels
        PYTHONNOUSERSITE="1",  # no ~/.local site-packages or ~/.local/etc/jupyter
        JUPYTER_TOKEN=token,
    )
    return env


def _server_command(dirs: dict[str, Path]) -> list[str]:
    """``python -m jupyter lab`` with every setting the tests rely on given as a trait."""
    traits = {
        "ServerApp.ip": "127.0.0.1",
        "ServerApp.port": "0",  # the OS picks a free port; read back from the runtime file
        "ServerApp.port_retries": "0",
        "ServerApp.open_browser": "False",
        "ServerApp.root_dir": str(dirs["root"]),
        "ServerApp.terminals_enabled": "False",
        "ServerApp.allow_root": "True",  # CI runs as root; the server refuses that by default
        "LabApp.user_settings_dir": str(dirs["settings"]),
        "LabApp.workspaces_dir": str(dirs["workspaces"]),
        "LabApp.expose_app_in_browser": "True",
        # kernels: only ipykernel's python3 of this environment (argv "python" = sys.executable)
        "KernelSpecManager.allowed_kernelspecs": "python3",
        "MappingKernelManager.default_kernel_name": "python3",
        **OFFLINE_TRAITS,
    }
    return [sys.executable, "-m", "jupyter", "lab", *(f"--{k}={v}" for k, v in traits.items())]


def start_jupyterlab(base: Path) -> JupyterLabServer:
    """Start a private JupyterLab under ``base`` and return once its API answers.

    Raises RuntimeError with the server log tail if it exits or does not answer in time.
    """
    dirs = _private_dirs(base)
    _write_offline_settings(dirs)
    token = secrets.token_hex(24)
    log_path = base / "jupyterlab.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _server_command(dirs), cwd=dirs["root"], env=_server_env(dirs, token),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: killpg at stop, and Ctrl-C stays ours
        )
    server = JupyterLabServer(base, dirs["root"], token, process, log_path)
    try:
        _wait_until_ready(server, dirs["runtime"])
        _check_kernelspecs(server)
    except BaseException:
        stop_jupyterlab(server)
        raise
    return server


def _server_url_from_runtime(runtime_dir: Path) -> str | None:
    """The server's base URL from the ``jpserver-<pid>.json`` it writes once it listens."""
    for info_file in runtime_dir.glob("jpserver-*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):  # maybe half written
            info = json.loads(info_file.read_text())
            return f"http://127.0.0.1:{info['port']}{info.get('base_url', '/')}"
    return None


def _wait_until_ready(server: JupyterLabServer, runtime_dir: Path) -> None:
    """Poll until ``/api/status`` answers with the token; fail with the log tail otherwise."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with code {server.process.returncode} while starting.\n"
                f"--- server log ({server.log_path}) ---\n{server.log_tail()}"
            )
        server.base_url = server.base_url or (_server_url_from_runtime(runtime_dir) or "")
        if server.base_url and _status_ok(server):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"JupyterLab did not answer on /api/status within {SERVER_START_TIMEOUT:.0f} s "
                f"(url: {server.base_url or 'not yet written'}).\n"
                f"--- server log ({server.log_path}) ---\n{server.log_tail()}"
            )
        time.sleep(0.2)


def _status_ok(server: JupyterLabServer) -> bool:
    """Whether the server answers an authenticated ``GET /api/status``."""
    try:
        server.api("GET", "api/status", timeout=2.0)
    except (OSError, ValueError):
        return False
    return True


def _check_kernelspecs(server: JupyterLabServer) -> None:
    """Fail early unless the only kernel is python3 started with this environment's Python."""
    specs = server.api("GET", "api/kernelspecs")
    names = sorted(specs["kernelspecs"])
    argv = specs["kernelspecs"].get("python3", {}).get("spec", {}).get("argv", [""])
    if names != ["python3"] or argv[0] not in ("python", sys.executable):
        raise RuntimeError(
            f"expected exactly the python3 kernel of {sys.prefix}; the server offers {names} "
            f"(python3 argv: {argv}). Is ipykernel installed in this environment?"
        )


def stop_jupyterlab(server: JupyterLabServer) -> None:
    """Stop the server: shut its kernels down, SIGTERM, then SIGKILL its process group."""
    if server.process.poll() is None and server.base_url:
        with contextlib.suppress(OSError, ValueError):
            server.shutdown_kernels()
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(SERVER_STOP_TIMEOUT)


@pytest.fixture(scope="session")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLabServer]:
    """One private JupyterLab server per test session; notebooks go into ``.root_dir``."""
    server = start_jupyterlab(tmp_path_factory.mktemp("jupyterlab"))
    yield server
    stop_jupyterlab(server)


# --------------------------------------------------------------------------------------------
# The browser
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Browser]:
    """Headless Chromium (the system one; Playwright's own browsers are not downloaded).

    Module-scoped: while Playwright's sync API is alive, the main thread has a running
    event loop, and every later test that calls asyncio.run() would fail.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium not found at {CHROMIUM}; install Debian's chromium package "
                    "(./dev test does) or set MESHFLOW_CHROMIUM")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class _PageLog:
    """What a page said while a test ran: console messages, page errors, blocked requests."""

    lines: list[str]

    def console(self, message: ConsoleMessage) -> None:
        """Record one console message with its level."""
        self.lines.append(f"[console.{message.type}] {message.text}")

    def page_error(self, error: Exception) -> None:
        """Record an uncaught exception in the page."""
        self.lines.append(f"[pageerror] {error}")

    def block_remote(self, route: Route) -> None:
        """Let local requests through; abort (and record) anything bound for the internet."""
        if LOCAL_URL.match(route.request.url):
            route.continue_()
        else:
            self.lines.append(f"[blocked] {route.request.method} {route.request.url}")
            route.abort("blockedbyclient")


@pytest.fixture
def lab_page(
    jupyterlab: JupyterLabServer,
    chromium_browser: Browser,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Page]:
    """A fresh, logged-in browser page with JupyterLab loaded (empty workspace).

    If loading or the test fails, a screenshot, the console log and the server log tail go to a
    temp dir that is printed. Afterwards the test's kernels are shut down.
    """
    context, page, log = _new_page(chromium_browser)
    failed_before = request.session.testsfailed
    try:
        try:
            page.goto(jupyterlab.login_url("lab?reset"), timeout=_ms(LAB_LOAD_TIMEOUT))
            wait_for_lab(page)
        except Exception:
            _save_failure_artifacts(page, log, jupyterlab, request, tmp_path_factory)
            raise
        yield page
        # testsfailed grows as soon as the call phase fails, before fixtures are torn down
        if request.session.testsfailed > failed_before:
            _save_failure_artifacts(page, log, jupyterlab, request, tmp_path_factory)
    finally:
        context.close()
        with contextlib.suppress(OSError, ValueError):
            jupyterlab.shutdown_kernels()


def _new_page(browser: Browser) -> tuple[BrowserContext, Page, _PageLog]:
    """A new context and page that record console output and block non-local requests."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    log = _PageLog([])
    context.route("**/*", log.block_remote)
    page = context.new_page()
    page.on("console", log.console)
    page.on("pageerror", log.page_error)
    return context, page, log


def _save_failure_artifacts(
    page: Page,
    log: _PageLog,
    server: JupyterLabServer,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Save a screenshot, the console log and the server log tail, and print where."""
    name = re.sub(r"[^\w.-]+", "_", request.node.name)[:60]
    dest = tmp_path_factory.mktemp(f"browser-failure-{name}")
    with contextlib.suppress(Exception):  # a crashed page must not hide the real failure
        page.screenshot(path=str(dest / "screenshot.png"), full_page=True)
    (dest / "console.log").write_text("\n".join(log.lines) + "\n")
    (dest / "server.log").write_text(server.log_tail(400) + "\n")
    # shown in the failure report under "Captured stdout teardown"
    print(f"browser artifacts of {request.node.nodeid}: {dest}")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    """Playwright wants milliseconds; the helpers take seconds."""
    return seconds * 1000


def _install_page_helpers(page: Page) -> None:
    """Make ``window.__labTest`` available now and after any reload of the page."""
    if page.evaluate("typeof window.__labTest") == "undefined":
        page.add_init_script(PAGE_HELPERS_JS)
        page.evaluate(PAGE_HELPERS_JS)


def _page_state(page: Page) -> str:
    """A short description of what the page shows, appended to timeout messages."""
    try:
        dialogs = page.evaluate("window.__labTest.dialogText()")
        outputs = page.evaluate("(() => { try { return window.__labTest.outputText(); }"
                                " catch (e) { return String(e); } })()")
    except Exception as err:  # the page may be gone; say so rather than raise from here
        return f"(page state unavailable: {err})"
    text = f"\n--- notebook output ---\n{outputs[-3000:]}"
    return text + (f"\n--- open dialog ---\n{dialogs}" if dialogs else "")


def wait_until(
    condition: Callable[[], Any],
    *,
    message: str,
    timeout: float = UI_TIMEOUT,
    interval: float = 0.2,
) -> Any:
    """Poll ``condition`` until it returns something truthy and return that value.

    For effects outside the browser (a file the notebook writes, a database row). Raises
    AssertionError with ``message`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout:.0f} s)")
        time.sleep(interval)


def wait_for_lab(page: Page, timeout: float = LAB_LOAD_TIMEOUT) -> None:
    """Wait until JupyterLab has started and restored its layout in ``page``."""
    try:
        page.wait_for_function("() => window.jupyterapp !== undefined", timeout=_ms(timeout))
        # a flag rather than awaiting the promise in evaluate, which has no timeout of its own
        page.evaluate(
            "() => { window.jupyterapp.restored.then(() => { window.__labRestored = true; }); }"
        )
        page.wait_for_function("() => window.__labRestored === true", timeout=_ms(timeout))
    except PlaywrightTimeoutError as err:
        raise AssertionError(
            f"JupyterLab did not load within {timeout:.0f} s at {page.url}; "
            "is LabApp.expose_app_in_browser on and the server up?"
        ) from err
    _install_page_helpers(page)


def open_notebook(page: Page, path: str, timeout: float = UI_TIMEOUT) -> Locator:
    """Open ``path`` (relative to the server root) as the current tab; wait for an idle kernel.

    Returns the notebook panel's locator (see ``notebook_locator``).
    """
    _install_page_helpers(page)
    page.evaluate(
        "path => window.__labTest.app().commands.execute("
        "'docmanager:open', {path, factory: 'Notebook'}).then(() => true)",
        path,
    )
    try:
        page.wait_for_function(
            "() => { const p = window.__labTest.app().shell.currentWidget;"
            " return !!(p && p.context && p.context.isReady && p.sessionContext"
            " && p.sessionContext.isReady && p.sessionContext.session?.kernel); }",
            timeout=_ms(timeout),
        )
    except PlaywrightTimeoutError as err:
        raise AssertionError(
            f"notebook {path!r} did not open with a kernel within {timeout:.0f} s"
            + _page_state(page)
        ) from err
    wait_for_kernel_idle(page, timeout)
    return notebook_locator(page)


def notebook_locator(page: Page) -> Locator:
    """Locator of the current notebook panel; scope your own queries to it."""
    panel_id = page.evaluate("window.__labTest.notebook().id")
    return page.locator(f'[id="{panel_id}"]')


def run_all_cells(page: Page) -> None:
    """Start ``notebook:run-all-cells`` on the current notebook, without waiting for it.

    Widgets can be used while cells still run; call ``wait_for_kernel_idle`` to wait for the end.
    """
    _install_page_helpers(page)
    page.evaluate("window.__labTest.runAll()")


def wait_for_kernel_idle(page: Page, timeout: float = UI_TIMEOUT) -> None:
    """Wait until the current notebook is done: run-all finished, kernel idle, no ``[*]`` cell.

    Also waits for answers to all requests the page sent the kernel (e.g. widget messages).
    """
    _install_page_helpers(page)
    try:
        page.wait_for_function(
            "() => window.__labTest.busyReasons().length === 0", timeout=_ms(timeout)
        )
    except PlaywrightTimeoutError as err:
        reasons = page.evaluate("window.__labTest.busyReasons()")
        raise AssertionError(
            f"notebook still busy after {timeout:.0f} s: {'; '.join(reasons)}" + _page_state(page)
        ) from err
    run = page.evaluate("window.__labTest.runs[window.__labTest.notebook().id] ?? null")
    if run and run["error"]:
        raise AssertionError(f"notebook:run-all-cells failed: {run['error']}")


def output_text(page: Page) -> str:
    """All visible output text of the current notebook, one output per line block."""
    _install_page_helpers(page)
    return page.evaluate("window.__labTest.outputText()")


def wait_for_output_text(page: Page, text: str, timeout: float = UI_TIMEOUT) -> None:
    """Wait until ``text`` appears in the current notebook's outputs (substring match)."""
    _install_page_helpers(page)
    try:
        page.wait_for_function(
            "text => window.__labTest.outputText().includes(text)", arg=text, timeout=_ms(timeout)
        )
    except PlaywrightTimeoutError as err:
        raise AssertionError(
            f"{text!r} did not appear in the notebook output within {timeout:.0f} s"
            + _page_state(page)
        ) from err


def wait_for_widgets(page: Page, timeout: float = UI_TIMEOUT) -> None:
    """Wait until at least one ipywidget is rendered in the outputs; explain it if none is.

    A missing widget usually means JupyterLab lacks the widget manager (jupyterlab_widgets).
    """
    views = notebook_locator(page).locator(".jp-OutputArea-output .jupyter-widgets")
    try:
        views.first.wait_for(state="visible", timeout=_ms(timeout))
    except PlaywrightTimeoutError as err:
        plugin = page.evaluate("id => window.__labTest.widgetsPlugin(id)", WIDGET_MANAGER_PLUGIN)
        if not plugin["known"]:
            reason = ("jupyterlab_widgets is not installed in this environment (or its lab "
                      f"extension is disabled): JupyterLab has no {WIDGET_MANAGER_PLUGIN} "
                      "plugin, so widgets show as their plain-text repr")
        elif not plugin["active"]:
            reason = f"the {WIDGET_MANAGER_PLUGIN} plugin is installed but did not activate"
        else:
            reason = "the widget manager is active but no widget rendered"
        raise AssertionError(f"no ipywidget rendered within {timeout:.0f} s: {reason}"
                             + _page_state(page)) from err


def _describe_buttons(notebook: Locator) -> str:
    """Texts of the widget buttons in the notebook, marking disabled ones."""
    labels = notebook.locator("button.jupyter-button").evaluate_all(
        "bs => bs.map(b => b.innerText.trim() + (b.disabled ? ' (disabled)' : ''))"
    )
    return ", ".join(repr(label) for label in labels) or "none"


def _describe_text_fields(notebook: Locator) -> str:
    """Label and placeholder of each Text-like widget in the notebook, for error messages."""
    fields = notebook.locator(".widget-text, .widget-textarea, .widget-password").evaluate_all(
        """boxes => boxes.map(box => {
             const label = box.querySelector('label.widget-label')?.innerText.trim() ?? '';
             const field = box.querySelector('input, textarea');
             return `label=${JSON.stringify(label)} placeholder=`
                    + `${JSON.stringify(field?.placeholder ?? '')}`
                    + (field?.disabled ? ' (disabled)' : '');
           })"""
    )
    return ", ".join(fields) or "none"


def click_widget_button(page: Page, text: str, timeout: float = UI_TIMEOUT) -> None:
    """Click the one enabled widget button whose visible text is exactly ``text``.

    An icon beside the text does not matter. Disabled buttons (e.g. of an already decided
    approval) are ignored; two enabled matches are an error, because the test would not
    know which one it clicked.
    """
    notebook = notebook_locator(page)
    button = notebook.locator("button.jupyter-button:enabled").filter(
        has_text=re.compile(rf"^\s*{re.escape(text)}\s*$")
    )
    try:
        button.click(timeout=_ms(timeout))
    except PlaywrightTimeoutError as err:
        raise AssertionError(
            f"no enabled widget button {text!r} to click within {timeout:.0f} s; "
            f"buttons in the notebook: {_describe_buttons(notebook)}"
        ) from err


def _text_input(page: Page, placeholder: str | None, label: str | None) -> Locator:
    """The input/textarea of a Text-like widget, found by placeholder or description label."""
    if (placeholder is None) == (label is None):
        raise ValueError("give exactly one of placeholder= or label=")
    notebook = notebook_locator(page)
    fields = notebook.locator(
        ".widget-text input, .widget-textarea textarea, .widget-password input"
    )
    if placeholder is not None:
        return fields.and_(notebook.get_by_placeholder(placeholder, exact=True))
    exact = re.compile(rf"^\s*{re.escape(label or '')}\s*$")
    boxes = notebook.locator(".widget-text, .widget-textarea, .widget-password")
    owner = boxes.filter(has=page.locator("label.widget-label", has_text=exact))
    return owner.locator("input, textarea")


def fill_widget_text(
    page: Page,
    value: str,
    *,
    placeholder: str | None = None,
    label: str | None = None,
    timeout: float = UI_TIMEOUT,
) -> None:
    """Type ``value`` into a Text/Textarea/Password widget found by placeholder or label.

    Fires ``change`` too, so widgets with ``continuous_update=False`` sync their value.
    """
    field = _text_input(page, placeholder, label)
    what = f"placeholder {placeholder!r}" if placeholder is not None else f"label {label!r}"
    try:
        field.fill(value, timeout=_ms(timeout))
        field.dispatch_event("change", timeout=_ms(timeout))
    except PlaywrightTimeoutError as err:
        raise AssertionError(
            f"no enabled widget text field with {what} within {timeout:.0f} s; text fields in "
            f"the notebook: {_describe_text_fields(notebook_locator(page))}"
        ) from err
