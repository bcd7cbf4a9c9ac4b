"""Shared argparse setup of every console script: defaults shown in --help, examples at the end, --version."""

from __future__ import annotations

import argparse

from vadedge import __version__


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default after its help; the examples block keeps its line breaks."""


class Parser(argparse.ArgumentParser):
    """Refuses to parse while an option has no help text: every option of every command is documented."""

    def parse_known_args(self, args=None, namespace=None):
        missing = [a.option_strings[0] if a.option_strings else a.dest for a in self._actions if a.help is None]
        if missing:
            raise AssertionError(f"{self.prog}: options without help text: {missing}")
        return super().parse_known_args(args, namespace)


def make_parser(prog: str, description: str, examples: list[str] | tuple[str, ...] = ()) -> argparse.ArgumentParser:
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
    p = Parser(prog, description=description, epilog=epilog, formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p
