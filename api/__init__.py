"""The HTTP service: FastAPI over the ``cadastre`` library."""
