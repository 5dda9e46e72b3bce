"""The ``servopt`` command: a Typer root with one sub-app per concept.

Command modules import only typer at module level; numba, ortools and pyarrow are imported inside
the commands so that ``--help`` and shell completion stay instant.
"""

from __future__ import annotations

import gc
import os
import sys

import typer

from servopt.cli import (
    calibrate_cmd,
    emulate_cmd,
    estimate_cmd,
    models_cmd,
    perfdb_cmd,
    search_cmd,
    simulate_cmd,
    webapp_cmd,
)
from servopt.errors import ServoptError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    help="servopt: find the best LLM serving deployment (agg or xPyD disagg) under TTFT/TPOT targets.",
)
cli_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Search, estimate and simulate: default, exp, estimate, simulate.",
)
app.add_typer(cli_app, name="cli")
cli_app.command("default")(search_cmd.default)
cli_app.command("exp")(search_cmd.exp)
cli_app.command("estimate")(estimate_cmd.estimate)
cli_app.command("simulate")(simulate_cmd.simulate)
app.add_typer(perfdb_cmd.app, name="perfdb")
app.add_typer(models_cmd.app, name="models")
app.command("webapp")(webapp_cmd.webapp)
app.command("emulate")(emulate_cmd.emulate)
app.command("calibrate")(calibrate_cmd.calibrate)


def main() -> None:
    """Console-script entry point: user errors print one line on stderr and exit non-zero."""
    # A command runs for about a second and frees almost everything by reference counting; the
    # cyclic collector's passes over the objects the imports create cost ~0.1 s of that. Long-lived
    # commands (webapp) switch it back on.
    gc.disable()
    # servopt's array work is element-wise; OpenBLAS's thread pool, started when numpy is imported,
    # only costs CPU (~0.1 s per run on 2 cores). Set before numpy is imported; a user's value wins.
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # servopt uses no pydantic plugins; without this pydantic scans every installed package's entry
    # points the first time it builds a validator.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        app(standalone_mode=False)
    except ServoptError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # typer/click usage errors
        from typer._click import exceptions as click_exc  # vendored click in typer>=0.26

        if isinstance(err, click_exc.ClickException):
            print(f"error: {usage_error_line(err)}", file=sys.stderr)
            sys.exit(err.exit_code)
        raise


# Click names its parameter types in its messages; servopt's errors name what a value must be.
_TYPE_WORDS = {"int range": "integer", "float range": "number", "int": "integer", "float": "number"}


def usage_error_line(err) -> str:
    """A Click/Typer usage error in servopt's one-line style: ``--field: 'value': what is allowed``.

    Click says "Usage: ... Try '--help'. Error: Invalid value for '--a' / '--b': 'x' is not a valid
    int range."; the user gets the same facts as every other servopt error."""
    from typer._click import exceptions as click_exc

    ctx = getattr(err, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    if isinstance(err, click_exc.MissingParameter) and err.param is not None:
        return f"{err.param.opts[0]}: required{where}"
    if isinstance(err, click_exc.NoSuchOption):
        near = f" (did you mean {', '.join(err.possibilities)}?)" if err.possibilities else ""
        return f"{err.option_name}: no such option{near}{where}"
    if isinstance(err, click_exc.BadParameter) and err.param is not None:
        message = err.message
        for click_word, word in _TYPE_WORDS.items():  # longest first: "int range" before "int"
            if f"is not a valid {click_word}" in message:
                message = message.replace(f"is not a valid {click_word}", f"is not a valid {word}")
                break
        return f"{err.param.opts[0]}: {message.rstrip('.')}"
    if isinstance(err, click_exc.BadOptionUsage) and err.option_name:
        # Click: "Option '--isl' requires an argument." -> "--isl: requires a value".
        message = err.message.replace(f"Option '{err.option_name}' ", "").replace("an argument", "a value")
        return f"{err.option_name}: {message.rstrip('.')}{where}"
    return f"{err.format_message().rstrip('.')}{where}"
