"""codec.training (see the README's Architecture section): rate-distortion training of the
registry's image models (``codec train``, ``torchrun -m codec.training``), export of frozen
coding weights (``codec export``) and a training-speed benchmark (``python -m codec.training.bench``).

Modules: :mod:`~codec.training.config` (configs), :mod:`~codec.training.data` (crops),
:mod:`~codec.training.loop` (the loop, DDP, checkpoints), :mod:`~codec.training.export`,
:mod:`~codec.training.bench`, :mod:`~codec.training.cli`.  Imports ``codec.models`` and
``codec.entropy`` only, never the ``codec`` API or ``codec.tools``.
"""
