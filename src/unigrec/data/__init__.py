"""Data: source adapters into the canonical tables, semi-synthetic queries, splits and negatives."""
