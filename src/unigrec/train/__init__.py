"""Training: data module, Lightning module, trainer assembly and the quick validation hook."""
