"""Data contracts: check canonical tables against pandera models, GX suites and cross-table rules."""
