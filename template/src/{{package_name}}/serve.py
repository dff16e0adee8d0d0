"""The HTTP prediction service: ``python -m <package>.serve [model_path=...] [port=...]``.

Serves an exported model (``make export``; ``make repro`` writes outputs/pipeline/model.pt2):
``POST /predict`` takes the raw rows ``predict`` takes (texts: ``{"rows": [{"text": ...}]}``;
images: uploaded files) and answers ``predict``'s columns, ``GET /health`` and ``GET /metadata``
(the model's data, code and checkpoint versions). Concurrent requests are batched
(``max_batch_size``, ``max_wait_ms``); larger requests than ``max_rows`` or ``max_body_mb`` are
refused (413); what the service receives is summarised in ``monitoring.log`` (``make monitor``
compares it with the training data). See ``serving/`` and docs/how-to/serve.md.

Exit codes: 0 stopped by SIGTERM or SIGINT (Ctrl-C) after a graceful shutdown; 2 bad config (a
port in use included); 3 missing or unusable model file.
"""

from omegaconf import DictConfig

from .config import check_settings, entry_point


@entry_point("serve")
def main(cfg: DictConfig) -> None:
    check_settings(cfg, "serve")  # every setting, before the model is read
    # Imported here so that `--help` and config errors answer without importing torch.
    from .serving.server import serve

    serve(cfg)


if __name__ == "__main__":
    main()
