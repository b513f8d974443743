"""Mining cadastre for Pakistan: the licence register on PostGIS.

This package is the library: domain rules and database access. It never
imports FastAPI; the HTTP service lives in the separate ``api`` package.
"""

__version__ = "0.1.0"
