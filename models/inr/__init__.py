"""Implicit-neural-representation codecs: the encoder fits a small network to one item and codes the network.

- :mod:`.image`: ``inr-image``, Cool-chic / C3-style latent grids, synthesis and autoregressive entropy model;
- :mod:`.arch`: the architecture as a stream describes it (header, layers, MACs per pixel);
- :mod:`.exact`: the decoder's integer arithmetic, the same on every device;
- :mod:`.fit`: the encoder's quantisation-aware fitting (float, any device).
"""
