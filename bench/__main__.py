"""``python -m bench NAME [ARGS] | list | all``: run ``bench/<NAME>.py``'s ``main()``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

import bench

USAGE = "usage: python -m bench NAME [ARGS] | list | all"


def available() -> list[str]:
    """Benchmark modules: every public module of the package (not ``__main__``, not ``_x``)."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(bench.__file__).parent)])
        if not m.name.startswith("_")
    )


def summary(name: str) -> str:
    doc = importlib.import_module(f"bench.{name}").__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def run(name: str, args: Sequence[str]) -> None:
    module = importlib.import_module(f"bench.{name}")
    sys.argv = [f"bench {name}", *args]
    module.main()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name == "list":
        for found in available():
            print(f"{found:20} {summary(found)}")
        return 0
    if name == "all":
        for found in available():
            print(f"== {found}", flush=True)
            run(found, [])
        return 0
    if name not in available():
        print(f"unknown benchmark {name!r}; `python -m bench list` shows them", file=sys.stderr)
        return 2
    run(name, rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
