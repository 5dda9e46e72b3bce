"""The FastAPI application: the JSON API, the page, and the guards around both.

Guards, outermost first: a request-body size limit (413), a Host check when bound to loopback (so a
web page elsewhere cannot reach the server through DNS rebinding), security headers, and exception
handlers that answer every error as ``{detail, problems}`` JSON, never with a stack trace.
Everything is served from the package: the page, and the Plotly.js that the ``plotly`` package
ships (no CDN; the app works offline).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from servopt.errors import ServoptError
from servopt.webapp.api import router, warm_caches
from servopt.webapp.experiments import error_json
from servopt.webapp.jobs import JobQueue
from servopt.webapp.settings import LOOPBACK_HOSTS, WebSettings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
PLOTLY_JS = ("package_data", "plotly.min.js")
# Plotly.js injects its own <style> elements, hence 'unsafe-inline' for styles only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def plotly_js_path() -> Path:
    """plotly.min.js inside the installed ``plotly`` package (located without importing plotly)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise ServoptError("plotly", "plotly", "the web app needs the plotly package (pip install plotly)")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*PLOTLY_JS)


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 before any handler reads them.

    The body is read here (it is small by construction) and replayed to the app, so a client that
    lies in Content-Length or streams without one is cut off at the limit all the same.
    """

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS_WITH_BODY:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: dict, receive: Any, send: Any) -> None:
        response = JSONResponse(
            {"detail": f"body: request body over the limit of {self.max_bytes} bytes", "problems": []},
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


class SecurityHeadersMiddleware:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _field_of(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    # A discriminated union adds the chosen member's tag ("default"/"yaml") to the location.
    if len(parts) > 1 and parts[0] in ("default", "yaml"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_response(err: RequestValidationError) -> JSONResponse:
    problems = []
    for item in err.errors():
        field = _field_of(tuple(item.get("loc", ())))
        message = str(item.get("msg", "invalid")).replace("Value error, ", "")
        if item.get("type") == "union_tag_invalid" or item.get("type") == "union_tag_not_found":
            field, message = "kind", "must be 'default' (the form) or 'yaml' (an experiment YAML)"
        value = item.get("input")
        value = value if isinstance(value, bool | int | float | str) or value is None else None
        if isinstance(value, str):  # lone surrogates cannot be encoded in the response
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        elif isinstance(value, float) and not math.isfinite(value):  # nor can NaN or infinities
            value = repr(value)
        text = f"{field}: {value!r}: {message}" if value is not None else f"{field}: {message}"
        problems.append(
            {
                "field": field,
                "message": message,
                "value": value,
                "allowed": None,
                "line": 0,
                "col": 0,
                "text": text,
            }
        )
    detail = "\n".join(p["text"] for p in problems) or "invalid request"
    return JSONResponse({"detail": detail, "problems": problems}, status_code=422)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, err: RequestValidationError) -> JSONResponse:
        return _validation_response(err)

    @app.exception_handler(ServoptError)
    async def on_user_error(_: Request, err: ServoptError) -> JSONResponse:
        return JSONResponse(error_json(err), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": str(err.detail), "problems": []},
            status_code=err.status_code,
            headers=getattr(err, "headers", None),
        )

    @app.exception_handler(Exception)
    async def on_bug(request: Request, err: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": "internal error (details are in the server log)", "problems": []}, status_code=500
        )


def create_app(settings: WebSettings | None = None) -> FastAPI:
    """The web app; its search queue starts and stops with the app (lifespan)."""
    settings = settings or WebSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        warm_caches()
        app.state.jobs = JobQueue(settings)
        app.state.jobs.start()
        try:
            yield
        finally:
            app.state.jobs.stop()

    app = FastAPI(
        title="servopt",
        summary="Find the best LLM serving deployment (agg or xPyD disagg) under TTFT/TPOT targets.",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        # The interactive docs pages load their scripts from a CDN; the schema itself is served.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    _install_handlers(app)
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(plotly_js_path(), media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    if settings.loopback_only:
        hosts = sorted({*LOOPBACK_HOSTS, "[::1]"})
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app
