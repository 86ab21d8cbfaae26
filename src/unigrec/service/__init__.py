"""Serving the registry's champion: the per-version model cache the CLI and the HTTP service share
(:mod:`~unigrec.service.champion`), request validation with our own messages
(:mod:`~unigrec.service.requests`) and the FastAPI service behind ``unigrec serve``
(:mod:`~unigrec.service.app`)."""
