"""unigrec: one generative model for recommendation and search, retrieval and ranking."""
__version__ = "0.1.0"
