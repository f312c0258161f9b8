"""Moved to :mod:`bnutils.teaching.student`; ``bnutils.student`` and ``python -m bnutils.student``
still work."""

import sys

from .teaching import student as _student

if __name__ == "__main__":
    sys.exit(_student.main())
sys.modules[__name__] = _student
