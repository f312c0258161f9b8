"""Notebooks must stand alone: when pytest collects several notebooks (``make test`` runs them
under nbval), their order is shuffled so that none relies on files another one left behind.
The cells of one notebook keep their order. Set ``BNBOOK_SHUFFLE_SEED`` to replay an order (the
seed is chosen before pytest-xdist starts its workers, which inherit it and so collect one order);
``BNBOOK_KEEP_ORDER=1`` keeps the order given (``make book`` runs the longest chapters first).

The checked copies of the chapters (``make notebooks``: nbval over each chapter's student copy with
its solutions put back) are also the student-copy check: ``bnutils.teaching.checked_plugin``."""

import os
import random

pytest_plugins = ["bnutils.teaching.checked_plugin"]


def pytest_configure(config):
    _seed()
    # One training run at a time inside a test process or a notebook's kernel: `make test` already
    # runs two pytest-xdist workers, and at smoke scale starting sweep's worker processes costs more
    # than the runs (tests/test_experiments.py tests the parallel sweep with jobs=2 itself).
    os.environ.setdefault("BNBOOK_JOBS", "1")


def pytest_report_header(config):
    return f"notebook order shuffled with BNBOOK_SHUFFLE_SEED={_seed()}"


def _seed() -> int:
    if "BNBOOK_SHUFFLE_SEED" not in os.environ:
        os.environ["BNBOOK_SHUFFLE_SEED"] = str(random.SystemRandom().randrange(10_000))
    return int(os.environ["BNBOOK_SHUFFLE_SEED"])


def pytest_collection_modifyitems(session, config, items):
    if os.environ.get("BNBOOK_KEEP_ORDER") == "1":  # `make book`: the chapters in the order given, longest first
        return
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(str(item.fspath), []).append(item)
    notebooks = [k for k in groups if k.endswith(".ipynb")]
    if len(notebooks) < 2:
        return
    order = sorted(groups)
    random.Random(_seed()).shuffle(order)
    items[:] = [item for key in order for item in groups[key]]
