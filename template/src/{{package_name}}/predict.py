"""Batch inference: ``python -m <package>.predict ckpt_path=... input=... output=...``.

Reads raw rows (Parquet or CSV with the source's columns; for images also a ``.npy`` array of
raw pixels), checks them against the raw schema, scales them as ``prepare`` did (with the
checkpoint's ``feature_scale``; ``paths.processed_dir/stats.json`` for checkpoints from before it)
and writes ``id``, ``prediction`` and, for classification, ``prob_<class>`` per class to
``output`` (Parquet or CSV, by suffix). See ``batch.py``.

Exit codes: 0 success; 2 bad config (a checkpoint of another dataset or task included);
3 missing or unusable checkpoint; 5 missing or invalid input or data.
"""

from omegaconf import DictConfig

from .config import check_settings, entry_point


@entry_point("predict", data_says="the input cannot be used: ")
def main(cfg: DictConfig) -> None:
    check_settings(cfg, "predict")  # every setting, before the checkpoint or the input is read
    # Imported here so that `--help` and config errors answer without importing torch.
    from .batch import predict

    result = predict(cfg)  # an error's message and exit code: errors.reported
    print(f"predicted {len(result)} rows: wrote {cfg.output}")


if __name__ == "__main__":
    main()
