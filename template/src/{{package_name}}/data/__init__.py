"""Data: preparing the raw data, validating it against its schema, and loading it for training."""
