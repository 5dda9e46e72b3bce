"""A real uvicorn server on 127.0.0.1 (an ephemeral port) in a thread, for load and browser tests."""

from __future__ import annotations

import threading
import time

import uvicorn

from servopt.webapp.server import create_app
from servopt.webapp.settings import WebSettings

SERVER_START_S = 60.0
SERVER_STOP_S = 15.0


class LoopbackServer:
    def __init__(self, settings: WebSettings):
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-under-test", daemon=True)

    def start(self) -> str:
        """Start and return the base URL."""
        self.thread.start()
        deadline = time.monotonic() + SERVER_START_S
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=SERVER_STOP_S)
