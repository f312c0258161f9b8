"""Teaching tools: what an instructor needs around the book's exercises.

* :mod:`bnutils.teaching.checks`  -- self-checks that name the first wrong thing, with points
* :mod:`bnutils.teaching.student` -- students' copies of the chapters (``make student``)
* :mod:`bnutils.teaching.grade`   -- grading a folder of submissions (``make grade``)

They live in a subpackage so that editing them does not change
:func:`bnutils.experiments.code_version`, which hashes only the top-level modules: the cached
experiments of the book stay valid.
"""
