"""The HTTP prediction service of an exported model: ``python -m <package>.serve`` (``make serve``).

- ``app.create_app``: the FastAPI app (``POST /predict``, ``GET /health``, ``GET /metadata``);
- ``inputs``: requests as the exported model takes them, answers as ``predict`` writes them;
- ``batcher``: concurrent requests stacked into one forward pass;
- ``server.serve``: uvicorn on the configured host and port, stopped cleanly by SIGTERM/SIGINT;
- ``monitoring``: the summaries of what the service receives, one JSON line per window;
- ``drift``: ``make monitor``'s comparison of those summaries with the training data.

Why FastAPI and uvicorn rather than LitServe: LitServe brings Lightning's serving stack (its own
worker processes, request queues and API conventions) for what is here one exported program
behind three endpoints. A thin FastAPI app is typed, tested in-process and over real HTTP,
answers with the project's own failure tables, and its batching is some fifty lines
(``batcher.py``) that say exactly what they do.
"""
