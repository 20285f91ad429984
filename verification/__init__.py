"""Face verification: pure, synchronous, CPU-bound functions on numpy arrays.

No web, database or video imports. Build a `DlibFaceEngine` once per process.
"""
