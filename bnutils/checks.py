"""Moved to :mod:`bnutils.teaching.checks`; ``from bnutils import checks`` still works (this is the
same module object, so a check patched in one name is patched in both)."""

import sys

from .teaching import checks as _checks

sys.modules[__name__] = _checks
