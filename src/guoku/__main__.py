"""``python -m guoku`` is the ``guoku`` command."""

from guoku.cli import main

main()
