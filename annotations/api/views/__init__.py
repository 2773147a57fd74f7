"""API views, one module per resource. Thin: validate, call one service or selector, serialize."""
