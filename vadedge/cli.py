"""Shared argparse setup of every console script: defaults shown in --help, examples at the end, --version."""

from __future__ import annotations

import argparse

from vadedge import __version__


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default after its help; the examples block keeps its line breaks."""


def make_parser(prog: str, description: str, examples: list[str] | tuple[str, ...] = ()) -> argparse.ArgumentParser:
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
    p = argparse.ArgumentParser(prog, description=description, epilog=epilog, formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p
