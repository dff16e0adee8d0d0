"""Batch inference: ``python -m <package>.predict ckpt_path=... input=... output=...``.

Tables: reads raw rows (Parquet or CSV with the source's columns), checks them against the raw
schema, scales them as ``prepare`` did (with the checkpoint's ``feature_scale``;
``paths.processed_dir/stats.json`` for checkpoints from before it) and writes ``id``,
``prediction`` and, for classification, ``prob_<class>`` per class to ``output`` (Parquet or
CSV, by suffix). See ``batch.py``.

Images: ``input=`` is a folder of image files (searched recursively), a glob pattern (quote it),
one image file or a ``.txt`` list of paths; each file is decoded and preprocessed as in training
(the checkpoint's ``data.pixel_range``, ``data.image_shape``, ``data.resize``) and ``output``
gets one row per file: ``path``, then the same columns. A file that cannot be used stops the
run before anything is written, naming every such file. See ``image_batch.py``.

Texts: ``input=`` is a CSV, Parquet or JSON-lines file with a ``text`` column (``id`` kept),
tokenized with the checkpoint's own tokenizer; ``output`` gets one row per text: ``id``, the
task's columns and ``class_name``. See ``text_batch.py``.

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
    count = result if isinstance(result, int) else len(result)  # image files: how many
    print(f"predicted {count} {'files' if isinstance(result, int) else 'rows'}: wrote {cfg.output}")


if __name__ == "__main__":
    main()
