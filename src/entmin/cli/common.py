"""What every command shares: options derived from the config dataclasses, comma lists parsed once, errors
mapped to one line and an exit code, progress that also works without a terminal.
"""
from __future__ import annotations

import functools
import inspect
import os
import sqlite3
import sys
import tempfile
import time
import typing
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import DataError, UsageError, exit_code_of

__all__ = ["DEBUG_ENV", "FMNIST_DIR", "Items", "comma_list", "config_options", "console", "handle_errors",
           "progress", "require_writable_dir", "set_threads"]

console = Console(stderr=True)
# the --data-dir of the commands that read Fashion-MNIST (or IDX files of the same names) only
FMNIST_DIR = typer.Option(None, help="Fashion-MNIST folder (default: Debian's or $ENTMIN_FASHION_MNIST_DIR)")
DEBUG_ENV = "ENTMIN_DEBUG"


class Items(list):
    """A comma-separated option value, parsed into a list (its own class so typer treats it as one value)."""


def comma_list(item: Callable[[str], Any] = str, choices: typing.Sequence[Any] | None = None,
               *, allow_empty: bool = False) -> Callable[[Any], Items]:
    """Parser of ``a,b,c``: each item converted by ``item`` and checked against ``choices``; a bad item is a
    usage error naming the option (typer adds the option name)."""
    def parse(value: Any) -> Items:
        if isinstance(value, Items):
            return value
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        parts = [v.strip() for v in str(value).split(",") if v.strip()]
        if not parts and not allow_empty:
            raise typer.BadParameter("empty list")
        out = Items()
        for v in parts:
            try:
                converted = item(v)
            except (ValueError, TypeError):
                kind = {int: "an integer", float: "a number"}.get(item, getattr(item, "__name__", "valid"))
                raise typer.BadParameter(f"{v!r} is not {kind}") from None
            if choices is not None and converted not in choices:
                raise typer.BadParameter(f"{v!r} is not one of {', '.join(map(str, choices))}")
            out.append(converted)
        return out
    return parse


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the failures a user can meet into one line on stderr and an exit code: 2 for a wrong request
    (usage), 1 for a failure of data, files or machine at run time. Set $ENTMIN_DEBUG=1 for tracebacks.
    Results already written to a store are never lost: every cell is committed when it finishes."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]: finished cells are kept in the store; rerun to continue")
            raise typer.Exit(130) from None
        except (ValueError, OSError, sqlite3.Error, RuntimeError, MemoryError) as e:
            if os.environ.get(DEBUG_ENV):
                raise
            console.print(f"[bold red]error:[/] {escape(_one_line(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exit_code_of(e)) from None
    return wrapper


def _one_line(e: BaseException) -> str:
    if isinstance(e, FileNotFoundError) and e.filename and not e.args[1:2]:
        return str(e)
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    msg = str(e) or type(e).__name__
    if isinstance(e, RuntimeError) and not isinstance(e, (UsageError, DataError)):
        msg = f"{type(e).__name__}: {msg.splitlines()[0]} (set {DEBUG_ENV}=1 for the traceback)"
    return msg


# ----- options from dataclass fields ----------------------------------------------------------------------
def _annotation(tp: Any, choices: typing.Sequence[str] | None) -> Any:
    if choices:
        lit = typing.Literal.__getitem__(tuple(choices))
        return lit | None if type(None) in typing.get_args(tp) else lit
    return tp


def config_options(cls: type, *, grid: typing.Iterable[str] = (), exclude: typing.Iterable[str] = (),
                   defaults: dict[str, Any] | None = None, extra_choices: dict[str, tuple[str, ...]] | None = None
                   ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command one option per field of the dataclass ``cls`` (help text and choices from the field's
    metadata), except fields marked ``cli=False`` and ``exclude``. Fields in ``grid`` become comma lists
    under a plural name (``--methods tent,eta``); tuple fields are comma lists too. The command receives
    ``options``: ``{field: value}`` and ``given``: the fields set on the command line (which win over a
    ``--config`` file). ``extra_choices`` adds values a command understands beyond the field's choices."""
    grid, exclude, defaults, extra_choices = set(grid), set(exclude), dict(defaults or {}), dict(extra_choices or {})

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(cls)
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.name not in ("options", "given")]
        added, names = [], {}
        for f in fields(cls):
            if not f.metadata.get("cli", True) or f.name in exclude:
                continue
            choices = f.metadata.get("choices")
            if choices and f.name in extra_choices:
                choices = (*choices, *extra_choices[f.name])
            default = defaults.get(f.name, f.default if f.default is not MISSING else None)
            help_text = f.metadata.get("help", "")
            if f.name in grid:
                param = f.name + "s"
                opt = typer.Option(",".join(map(str, default if isinstance(default, (list, tuple)) else [default])),
                                   f"--{param.replace('_', '-')}", help=f"comma list: {help_text}",
                                   parser=comma_list(str, choices), metavar=_metavar(choices))
                ann: Any = Items
            elif typing.get_origin(hints[f.name]) is tuple:
                param = f.name
                opt = typer.Option("all" if f.name == "corruptions" else ",".join(default), help=help_text,
                                   parser=comma_list(str), metavar="NAME,...")
                ann = Items
            else:
                param = f.name
                opt = typer.Option(default, f"--{param.replace('_', '-')}", help=help_text, show_default=True)
                ann = _annotation(hints[f.name], choices)
            added.append(inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann))
            names[param] = f.name

        @functools.wraps(fn)
        def wrapper(ctx: typer.Context, **kwargs: Any) -> Any:
            values, given = {}, set()
            for param, name in names.items():
                values[name] = kwargs.pop(param)
                src = ctx.get_parameter_source(param)
                if src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP"):
                    given.add(name)
            return fn(options=values, given=given, **kwargs)

        ctx_param = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        wrapper.__signature__ = sig.replace(parameters=[ctx_param, *own, *added])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in [ctx_param, *own, *added]}
        return wrapper

    return deco


def _metavar(choices: typing.Sequence[str] | None) -> str:
    return ("[" + "|".join(choices) + "],...") if choices else "NAME,..."


# ----- environment checks -----------------------------------------------------------------------------------
def set_threads(n: int | None) -> None:
    """Intra-op threads of torch (default: torch's own choice)."""
    if n is None:
        return
    if n < 1:
        raise UsageError(f"--threads must be >= 1, got {n}")
    import torch

    torch.set_num_threads(n)


def require_writable_dir(path: Path, what: str = "output folder") -> Path:
    """Create ``path`` and prove it writable now, before any compute (an unwritable --out would otherwise
    be discovered after hours of work)."""
    from ..utils import ensure_dir

    ensure_dir(path, what)
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".entmin-write-test-"):
            pass
    except OSError as e:
        raise DataError(f"the {what} {path} is not writable ({e.strerror or e})") from None
    return path


# ----- progress --------------------------------------------------------------------------------------------
@contextmanager
def progress(total: int, description: str = "benchmark"):
    """Yields ``advance(n=1, line=None)``: a progress bar on a terminal; without one (nohup, CI logs) one line
    per finished unit with the elapsed time, so a long job is never silent."""
    t0 = time.perf_counter()
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as prog:
            task = prog.add_task(description, total=total)

            def advance(n: int = 1, line: str | None = None) -> None:
                prog.update(task, advance=n, description=line or description)

            yield advance
        return
    state = {"done": 0}

    def advance(n: int = 1, line: str | None = None) -> None:
        state["done"] += n
        if line is not None:
            console.print(f"[{state['done']}/{total} {time.perf_counter() - t0:7.1f}s] {line}", highlight=False,
                          soft_wrap=True)

    yield advance
