"""Inference shared by training validation, evaluation and serving: prompts under the leak-free context
rule (``prompts``), and the one retrieve-unseen / rank / fuse / re-rank path (``retrieval``) that the
served model (``serving``) and every measured figure go through."""
