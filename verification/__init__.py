"""Face verification: pure, synchronous, CPU-bound functions on numpy arrays.

No web, database or video imports. Build an engine once per process with
`verification.engines.make_engine(face_settings)`.
"""
