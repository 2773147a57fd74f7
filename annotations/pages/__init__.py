"""HTML pages, one module per area. Thin: read through selectors, write through services, render; JSON for
the pages' scripts comes from the API (annotations/api). Never imports torch, tasks or worker."""
