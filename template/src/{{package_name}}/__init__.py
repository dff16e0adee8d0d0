"""The project's package.

Dependencies point one way, down the layers: the commands (train, evaluate, predict, export,
tune, data.prepare, data.validate) -> the search (training.tuning) -> training | evaluation |
inference -> tracking -> tasks -> models -> data -> errors, settings, config. Nothing imports a
command, only ``tracking`` imports the experiment tracker, and ``tests/test_layers.py`` holds
the package to it (docs/layout.md).
"""
