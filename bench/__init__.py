"""Benchmarks, run from the repository root: ``python -m bench NAME [ARGS]``, ``list`` or ``all``.

Each module here with a ``main()`` is one benchmark; it reads its own options from ``sys.argv``
(the runner sets ``sys.argv`` to the benchmark's name and arguments), prints readable lines and
ends with one JSON line that scripts and the decision records can quote.
"""
