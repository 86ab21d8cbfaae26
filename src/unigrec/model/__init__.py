"""The generative model: vocabulary, serialiser, transformer, prefix trie and constrained decoding."""
