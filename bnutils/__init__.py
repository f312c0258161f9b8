"""bnutils: the shared package of *How batch normalization helps*, an executable textbook.

Modules, one idea each:

* :mod:`bnutils.config`      -- the scale (``BNBOOK_SCALE``), the device, seeding
* :mod:`bnutils.data`        -- the data sets, as tensors with a fixed split
* :mod:`bnutils.norms`       -- batch normalization from scratch, and its variants
* :mod:`bnutils.models`      -- MLP, VGG-style CNN and deep linear network builders
* :mod:`bnutils.train`       -- the training loop and its :class:`~bnutils.train.History`
* :mod:`bnutils.experiments` -- experiments as frozen configs, sweeps, the joblib cache
* :mod:`bnutils.metrics`     -- measurements taken during training (ICS, landscape, ...)
* :mod:`bnutils.hessian`     -- Hessian-vector products
* :mod:`bnutils.state`       -- snapshot and restore, so that measuring never disturbs
* :mod:`bnutils.plot`        -- the house style: curves with bands over seeds
"""

from .config import device, get_scale, pick, seed_everything, set_threads

__version__ = "0.1.0"
__all__ = ["device", "get_scale", "pick", "seed_everything", "set_threads"]

set_threads()  # one CPU thread unless $BNBOOK_THREADS says otherwise: see config.set_threads
