"""Strata: see and work with container image storage, without a daemon and without root."""

__version__ = "0.1.0"
