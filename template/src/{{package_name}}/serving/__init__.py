"""The HTTP prediction service (``serve``) and what it records for ``monitor``."""
