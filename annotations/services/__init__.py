"""Writes, one module per subject. Pages, the API, commands and the worker call these; none imports torch."""
