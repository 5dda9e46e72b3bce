"""Every option of every command says what it is for."""

import typer
from typer.core import TyperOption

from servopt.cli.app import app


def _commands(cmd, path):
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, f"{path} {name}")


def test_every_option_is_described():
    root = typer.main.get_command(app)
    undescribed = [
        f"{path} {param.opts[0]}"
        for path, cmd in _commands(root, "servopt")
        for param in cmd.params
        if isinstance(param, TyperOption) and not (param.help or "").strip()
    ]
    assert undescribed == []
