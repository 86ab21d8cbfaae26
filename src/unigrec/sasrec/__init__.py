"""SASRec (Kang & McAuley 2018) as plain torch: the network and its training loop on item sequences.

Two users, so it sits low in the package: the evaluation's SASRec baseline (a catalogue scorer around it) and
the identifiers stage's sequential collaborative source (its item embeddings, GenSAR's choice of source).
"""
