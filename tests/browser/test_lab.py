"""A chapter run the way a reader runs it: in JupyterLab, all cells, through the UI.

JupyterLab starts on 127.0.0.1 with a token, on a copy of the chapter (so the committed notebook
keeps no outputs), with the project's kernel and ``BNBOOK_SCALE=smoke``. Chromium opens the
notebook, chooses Run > Run All Cells from the menu, waits for the kernel, saves, and the test
checks the saved notebook: every code cell ran, and none has an error output.

It also reads the chapter as a reader does (issue 18): the text of its rendered markdown and of its
outputs, from the DOM, shows no raw MyST (``{glue``, ``{cite``, ``{doc``, a directive's ``:label:``
line), which ``jupyterlab-myst`` renders; the glued numbers, which it cannot render (its issue
#165), stand in the hidden cell under each paragraph (``bnutils.glued``), every one filled in.

The chapter is ``$BNBOOK_LAB_NOTEBOOK`` (default ``book/batchnorm.ipynb``); with
``BNBOOK_LAB_NOTEBOOK=stand-in``, a small notebook in the chapters' style stands in.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from readers_env import ROOT

TIMEOUT_S = float(os.environ.get("BNBOOK_LAB_TIMEOUT", 180))

STAND_IN = [
    ("markdown", "# Stand-in\n\nUsed while no chapter has code cells. Mean $\\mu$ = {glue:text}`mean:.3f`."),
    (
        "code",
        "import torch\nfrom myst_nb import glue\nfrom bnutils import plot\n"
        "from bnutils.config import get_scale, pick\nplot.set_style()\nSCALE = get_scale()",
    ),
    ("code", "x = torch.randn(pick(smoke=64, book=1024), 8)\nglue('mean', float(x.mean()), display=False)"),
    ("code", "import matplotlib.pyplot as plt\nplt.plot(x[:, 0]); plt.show()\nassert SCALE == 'smoke'"),
]


def pick_notebook(workdir: Path) -> Path:
    # Default: the BatchNorm chapter, the book's first lecture (about 20 s at smoke scale), which
    # like every lecture chapter stands alone in a folder of its own.
    name = os.environ.get("BNBOOK_LAB_NOTEBOOK", "book/batchnorm.ipynb")
    if name != "stand-in":
        return Path(shutil.copy(ROOT / name, workdir / Path(name).name))
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(s) if kind == "markdown" else nbformat.v4.new_code_cell(s)
        for kind, s in STAND_IN
    ]
    from bnutils import glued

    nb = nbformat.from_dict(glued.sync(json.loads(nbformat.writes(nb)), "stand_in"))
    path = workdir / "stand_in.ipynb"
    nbformat.write(nb, path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path, browser):
    """JupyterLab on 127.0.0.1 with a token, serving a temporary copy; yields (url, token, notebook)."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    settings = home / "settings" / "@jupyterlab"
    # Render every cell (no windowing), and no news or update checks: offline, and quiet.
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"})
    )
    (settings / "apputils-extension").mkdir(parents=True)
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    (settings / "docmanager-extension").mkdir(parents=True)
    (settings / "docmanager-extension" / "plugin.jupyterlab-settings").write_text(
        json.dumps({"autoStartDefaultKernel": True})
    )
    notebook = pick_notebook(work)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        BNBOOK_SCALE="smoke",
        BNBOOK_DATA=os.environ.get("BNBOOK_DATA", str(ROOT / "data")),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
    )
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab",
            "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}", f"--LabApp.user_settings_dir={home / 'settings'}",
            f"--LabApp.workspaces_dir={home / 'workspaces'}",
            *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, token, notebook
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_run_all_cells_in_jupyterlab(browser, lab, screenshots):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    url, token, notebook = lab
    n_code = sum(
        c.cell_type == "code" and c.source.strip() != ""
        for c in nbformat.read(notebook, as_version=4).cells
    )  # JupyterLab does not run empty cells
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{url}/lab/tree/{notebook.name}?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        # A "Select Kernel" dialog may ask which kernel: the notebook's own, python3 (the venv's).
        try:
            page.locator(".jp-Dialog .jp-mod-accept").click(timeout=5_000)
        except PlaywrightTimeout:
            pass
        # The kernel is ready when the status bar says "Python 3 (ipykernel) | Idle".
        page.wait_for_function(
            "() => /\\| Idle/.test(document.querySelector('#jp-main-statusbar').innerText)"
        )
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        # Running has begun when a prompt shows [*] or a number; it is over when the kernel is
        # idle and no cell waits ([*]), whether every cell ran or Run All stopped at an error.
        prompts = "[...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent.trim())"
        idle = "/\\| Idle/.test(document.querySelector('#jp-main-statusbar').innerText)"
        page.wait_for_function(f"() => {prompts}.some(t => t !== '[ ]:' && t !== '')", timeout=30_000)
        page.wait_for_function(
            f"() => {idle} && !{prompts}.includes('[*]:')", timeout=TIMEOUT_S * 1000, polling=500
        )
        # what a reader reads: rendered markdown (its editor is hidden) and outputs, not the code
        extensions = page.evaluate(
            "() => JSON.parse(document.getElementById('jupyter-config-data').textContent)"
            ".federated_extensions.map(e => e.name)"
        )
        shown = page.evaluate(
            "() => [...document.querySelectorAll('.jp-MarkdownCell .jp-Cell-inputWrapper, .jp-OutputArea')]"
            ".map(e => e.innerText).join('\\n')"
        )
        page.keyboard.press("Control+s")
        page.wait_for_function(
            "() => !document.querySelector('.jp-mod-dirty')", timeout=30_000
        )
    finally:
        page.screenshot(path=str(screenshots / "jupyterlab.png"))  # also when it failed: look
        context.close()

    saved = nbformat.read(notebook, as_version=4)
    errors = [
        f"cell {i}: {o.get('ename')}: {o.get('evalue')}"
        for i, c in enumerate(saved.cells)
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors, f"{notebook.name} raised in JupyterLab: {errors}"
    not_run = [
        i
        for i, c in enumerate(saved.cells)
        if c.cell_type == "code" and c.source.strip() and c.execution_count is None
    ]
    assert not not_run, f"{notebook.name}: {len(not_run)} of {n_code} code cells not run: {not_run}"

    assert "jupyterlab-myst" in extensions, f"jupyterlab-myst is not loaded (requirements.txt): {extensions}"
    raw = {t: shown[max(0, shown.index(t) - 80):shown.index(t) + 80]
           for t in ("{glue", "{cite", "{doc", "{ref", "{prf", "{exercise", "{solution", ":label:", ":class:")
           if t in shown}
    assert not raw, f"{notebook.name}: raw MyST visible in JupyterLab: {raw}"
    from bnutils import glued

    tables = [(i, "".join(o.get("data", {}).get("text/plain", "") for o in c.outputs))
              for i, c in enumerate(saved.cells) if c.cell_type == "code" and c.source.startswith("glued.show(")]
    cited = [k for c in saved.cells if c.cell_type == "markdown" for k in glued.keys_of(c.source)]
    assert cited and len(tables) == sum(bool(glued.keys_of(c.source)) for c in saved.cells if c.cell_type == "markdown")
    unfilled = [(i, t) for i, t in tables if not t or glued.MISSING in t or "run that chapter" in t]
    assert not unfilled, f"{notebook.name}: glued numbers not shown under their paragraphs: {unfilled}"
    for key in cited:  # each number beside the key the rendered text shows in its place
        assert glued._split(key)[0] in shown, f"{notebook.name}: {key} is not in any table JupyterLab shows"
