"""Training: the loop, checkpointing and resume, distributed and mixed-precision helpers."""
