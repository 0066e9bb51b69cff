"""Learned models, their latent codecs, their bitstreams (``payload``) and the registry of shipped weights.

Importing ``codec.models`` is cheap: the architectures (and CompressAI, torch) load when a
model is first built (``codec.models.registry.ModelSpec.arch_class``).
"""
