"""Capture: turns every video source into `FrameSample` values.

It is the only reader of a video track. It samples at the moments the
supervisor asks for and drops the frames nobody needs (counted). It knows
nothing about faces or storage.
"""
