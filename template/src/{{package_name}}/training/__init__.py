"""Training: the loop, checkpointing and resume, distributed and mixed-precision helpers.

``trainer.fit(cfg, output_dir, logger)`` is the loop. It calls its parts by name: ``plan`` (the
run's numbers; the debug modes are presets of it), ``splits``, ``window`` (the loss window),
``validator`` (when to validate, early stopping) and ``checkpointer`` (resume, when to save, the
best checkpoint). ``checkpoint`` writes and reads the files a run resumes from; ``distributed``
and ``precision`` hide torchrun and autocast; ``sampling`` makes the data order a function of
(seed, epoch) so that a resumed run sees the same batches.
"""
