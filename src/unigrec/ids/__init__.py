"""Item identifiers: text and collaborative embeddings, RQ-VAE quantiser, collision handling."""
