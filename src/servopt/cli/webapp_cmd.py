"""``servopt webapp``: serve the search UI and its JSON API on a local port."""

from __future__ import annotations

import gc
import sys

import typer

from servopt.errors import ServoptError


def webapp(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind; anything but loopback is exposed"
    ),
    port: int = typer.Option(8000, "--port", help="TCP port"),
) -> None:
    """Start the web app: a form for the default search, a YAML editor, progress, tables and the Pareto chart."""
    gc.enable()  # a server lives long: the CLI's short-run collector pause (cli/app.py) must not apply
    try:
        import uvicorn

        from servopt.webapp.server import create_app
    except ImportError as err:
        raise ServoptError(
            "webapp", err.name, "the web app needs its extra installed: pip install 'servopt[web]'"
        ) from None
    from servopt.webapp.settings import WebSettings

    settings = WebSettings(host=host, port=port)
    if not settings.loopback_only:
        print(
            f"warning: binding {host}: the web app is reachable from other machines; it has no authentication",
            file=sys.stderr,
        )
    print(f"servopt webapp on http://{'[' + host + ']' if ':' in host else host}:{port}/", file=sys.stderr)
    # One server process: the search queue and its worker live in it, so limits hold per machine.
    uvicorn.run(create_app(settings), host=host, port=port, workers=1, log_level="info")
