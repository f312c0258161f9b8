"""bnutils: the shared package of *How batch normalization helps*, an executable textbook.

Modules, one idea each (a function's name says which file holds it). What a training run
executes -- and so what :func:`bnutils.experiments.code_version` hashes into the cache key:

* :mod:`bnutils.config`       -- the scale (``BNBOOK_SCALE``), the device, seeds, threads
* :mod:`bnutils.data`         -- the data sets, as tensors with a fixed split
* :mod:`bnutils.norms`        -- batch normalization from scratch, and its variants
* :mod:`bnutils.models`       -- MLP, VGG-style CNN and deep linear network; their weighted layers
* :mod:`bnutils.train`        -- the training loop and its :class:`~bnutils.train.History`
* :mod:`bnutils.experiments`  -- experiments as frozen configs, the probes by name, sweeps, the cache
* :mod:`bnutils.state`        -- snapshot and restore, so that measuring never disturbs
* :mod:`bnutils.ics`          -- internal covariate shift (Santurkar et al.'s Definition 2.1), its probe
* :mod:`bnutils.probes`       -- activation, weight, gradient and saturation statistics, their probes
* :mod:`bnutils.landscape`    -- the walk along the gradient (loss variation, beta-smoothness), its probe
* :mod:`bnutils.curvature`    -- Hessian-vector products, CG/Newton, power iteration, Lanczos/SLQ, probes

Used by the chapters around the runs (outside the cache key):

* :mod:`bnutils.theory`       -- the survey's theorems and the descent lemma, evaluated
* :mod:`bnutils.quadratics`   -- quadratic test problems for optimisers (linear regression too), the
  learning-rate schedule
* :mod:`bnutils.landscape_plots` -- the landscape probes of groups of runs, drawn and compared seed by seed
* :mod:`bnutils.timing`       -- the wall-clock cost of a call (torch.utils.benchmark's Timer)
* :mod:`bnutils.claims`       -- the claims ledger: each claim checked, glued and recorded
* :mod:`bnutils.glued`        -- the glued numbers of a paragraph, shown outside the book's build
* :mod:`bnutils.layerwise`    -- per-layer probe results (the ICS probe's) as runs x steps x layers
* :mod:`bnutils.plot`         -- the house style: curves with bands over seeds, diverged runs marked, tables
* :mod:`bnutils.tables`       -- tables for readers: names, significant digits, bytes
* :mod:`bnutils.plot_zh`      -- the Chinese edition's figure labels
* :mod:`bnutils.language`     -- which edition is built, and a label or word in its language
* :mod:`bnutils.translations` -- the Chinese edition's catalogues, configuration and notebooks
* :mod:`bnutils.teaching`     -- self-checks, students' copies, grading (a subpackage)
* :mod:`bnutils.checks`, :mod:`bnutils.student` -- the old names of ``teaching.checks`` and
  ``teaching.student`` (``from bnutils import checks`` in the chapters)
"""

from .config import device, get_scale, pick, seed_everything, set_threads

__version__ = "0.1.0"
__all__ = ["device", "get_scale", "pick", "seed_everything", "set_threads"]

set_threads()  # one CPU thread unless $BNBOOK_THREADS says otherwise: see config.set_threads
