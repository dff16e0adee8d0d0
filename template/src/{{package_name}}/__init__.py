"""The project's package.

Dependencies point one way: the entry points (train, evaluate, predict) use ``training`` and
``evaluation``, which use ``data`` and ``models``. Nothing imports an entry point, and only
``tracking`` imports the experiment tracker.
"""
