"""``servopt webapp``: the same search as the CLI, in a browser.

``server.create_app(settings)`` builds the FastAPI app (JSON API under ``/api/`` and the page);
searches run one at a time in a worker process behind a bounded queue (``jobs``, ``worker``), on the
same library calls as the CLI (``servopt.config`` loaders, ``servopt.pipeline``). This package's
``__init__`` stays import-light: the worker process imports it without FastAPI.
"""
