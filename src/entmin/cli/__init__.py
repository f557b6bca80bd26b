"""The ``entmin`` command: a thin layer over the library, one module per group of commands.

Every command maps the failures a user can meet to one line and an exit code in one place
(:func:`~entmin.cli.common.handle_errors`: 2 for a wrong request, 1 for data, files or machine), and the
benchmark options are derived from the config dataclasses (:func:`~entmin.cli.common.config_options`).
"""
from __future__ import annotations

import typer

from . import bench, data, estimate, info, rl, seg, tpt, training

__all__ = ["app", "main"]

app = typer.Typer(help="entmin: entropy minimisation toolkit (objectives, test-time adaptation, benchmarks).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
for group in (bench, data, training, estimate, rl, seg, tpt, info):
    group.register(app)
seg.register_uda(app)


def main() -> None:
    app()
