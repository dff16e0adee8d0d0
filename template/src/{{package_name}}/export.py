"""Export for serving: ``python -m <package>.export ckpt_path=... [output=model.pt2|model.onnx]``.

Saves the checkpoint's model, wrapped with the input scaling it was trained with (the checkpoint's
``feature_scale``; ``paths.processed_dir/stats.json`` for checkpoints from before it) and its
output transform (``models/predictor.py``), with a dynamic batch dimension: float32 raw rows
``(n, features)`` in (for images: float32 raw pixels ``(n, C, H, W)`` of ``data.image_shape`` in
``data.pixel_range`` units, the training ``Preprocess`` inside; for texts: int64 token ids
``(n, L)``, ``L`` dynamic up to ``data.max_length``, with the checkpoint's tokenizer written
beside as ``<name>.tokenizer.json``); probabilities ``(n, classes)`` or values in the target's
units ``(n,)`` out. ``output``'s suffix picks the format:

- ``.pt2`` (the default, beside the checkpoint): a ``torch.export`` program; load it with
  ``torch.export.load(path).module()``, its ``predictor.json`` in the file's extra files;
- ``.onnx``: the same program as an ONNX model (``torch.onnx.export``), for onnxruntime or any
  ONNX runtime without torch; ``predictor.json`` is the model's ``metadata_props`` entry of that
  name.

``predictor.json`` describes the input and output; ``exporting.load_program`` reads either format
with it and runs it on numpy batches.

Exit codes: 0 success; 2 bad config (an ``output`` that is neither ``.pt2`` nor ``.onnx``);
3 missing or unusable checkpoint; 5 missing or invalid data.
"""

from omegaconf import DictConfig

from .config import check_settings, entry_point


@entry_point("export")
def main(cfg: DictConfig) -> None:
    check_settings(cfg, "export")  # the typed schema, before the checkpoint is read
    # Imported here so that `--help` and config errors answer without importing torch.
    from .exporting import export_model

    path = export_model(cfg)  # an error's message and exit code: errors.reported
    if path.suffix == ".onnx":
        print(f"wrote {path} (ONNX; run it with onnxruntime.InferenceSession)")
    else:
        print(f"wrote {path} (torch.export; load it with torch.export.load)")


if __name__ == "__main__":
    main()
