"""Training: the loop, checkpointing and resume, distributed and mixed-precision helpers.

``trainer.fit(cfg, output_dir, logger)`` is the loop; ``checkpoint`` writes and reads the state
it resumes from; ``distributed`` and ``precision`` hide torchrun and autocast; ``sampling`` makes
the data order a function of (seed, epoch) so that a resumed run sees the same batches.
"""
