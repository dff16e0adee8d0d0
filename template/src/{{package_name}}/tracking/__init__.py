"""Tracking: the only code that talks to the experiment tracker.

The trainer and the evaluator receive a logger object and never import the tracker themselves,
so a run without tracking does not pay for importing it.
"""
