"""Clearpost: end-to-end encrypted messaging whose privacy claims can be checked."""

__version__ = "0.1.0"
