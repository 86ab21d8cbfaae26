"""Errors that the CLI reports as one clear message instead of a traceback."""

from __future__ import annotations


class UnigrecError(Exception):
    """Base for expected failures: bad input data, bad params, missing upstream outputs."""


class SourceError(UnigrecError):
    """A data source could not be read (missing files, bad format, checksum mismatch)."""


class ContractViolation(UnigrecError):
    """Data broke a contract; the message names table, column, rule and example rows."""
