"""instruct: build instruction-tuning datasets from BluePrint social-media threads."""

__version__ = "0.5.1"
