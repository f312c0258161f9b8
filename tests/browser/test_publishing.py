"""The publishing workflow: valid, and it runs only what the README's commands run.

No browser needed; it lives here with the other readers'-experience tests.
"""

from __future__ import annotations

import re

import yaml

from readers_env import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def test_workflow_builds_with_make_book_and_deploys_pages():
    wf = yaml.safe_load(WORKFLOW.read_text())
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as True
    assert "push" in on and "workflow_dispatch" in on
    assert wf["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    uses = [s.get("uses", "").split("@")[0] for s in build["steps"]]
    assert uses[:2] == ["actions/checkout", "actions/setup-python"]
    assert "actions/cache" in uses and "actions/upload-pages-artifact" in uses
    cache = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/cache"))
    assert "_build/.jupyter_cache" in cache["with"]["path"]
    assert "_build/zh/_build/.jupyter_cache" in cache["with"]["path"]
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages"))
    assert upload["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert deploy["steps"][0]["uses"].startswith("actions/deploy-pages@")

    # Every command it runs is a `make` target of the Makefile, named in the README when there is one.
    runs = [s["run"].strip() for job in wf["jobs"].values() for s in job["steps"] if "run" in s]
    assert runs == ["make book", "make book-zh"], runs  # the English book, then the Chinese edition in it (zh/)
    makefile = (ROOT / "Makefile").read_text()
    readme = ROOT / "README.md"
    for cmd in runs:
        target = cmd.split()[1]
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"no Makefile target {target}"
        if readme.exists():
            assert cmd in readme.read_text(), f"README.md does not name `{cmd}`"
