"""medspa: the operating system of a medical spa."""

__version__ = "0.1.0"
