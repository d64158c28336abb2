#!/usr/bin/env python
"""Reproduce Table 2 of Kim, Purdie & McIntosh (2023), CTAN. See README.md; `--help` for options."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from benchmark.experiment.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
