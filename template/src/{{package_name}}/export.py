"""Export for serving: ``python -m <package>.export ckpt_path=... [output=model.pt2]``.

Saves the checkpoint's model, wrapped with the input scaling it was trained with (the checkpoint's
``feature_scale``; ``paths.processed_dir/stats.json`` for checkpoints from before it) and its
output transform (``models/predictor.py``), as a ``torch.export`` program with a dynamic
batch dimension: float32 raw rows ``(n, features)`` in (for images: float32 raw pixels
``(n, C, H, W)`` of ``data.image_shape`` in ``data.pixel_range`` units, the training
``Preprocess`` inside; for texts: int64 token ids ``(n, L)``, ``L`` dynamic up to
``data.max_length``, with the checkpoint's tokenizer written beside as ``<name>.tokenizer.json``);
probabilities ``(n, classes)`` or values in the target's units ``(n,)``
out. Load it with ``torch.export.load(path).module()``; the file's
``predictor.json`` describes the input and output (``exporting.load_exported`` reads both).

Exit codes: 0 success; 2 bad config; 3 missing or unusable checkpoint; 5 missing or invalid data.
"""

from omegaconf import DictConfig

from .config import check_settings, entry_point


@entry_point("export")
def main(cfg: DictConfig) -> None:
    check_settings(cfg, "export")  # the typed schema, before the checkpoint is read
    # Imported here so that `--help` and config errors answer without importing torch.
    from .exporting import export_model

    path = export_model(cfg)  # an error's message and exit code: errors.reported
    print(f"wrote {path} (torch.export; load it with torch.export.load)")


if __name__ == "__main__":
    main()
