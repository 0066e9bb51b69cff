"""codec.training (see the README's Architecture section): training of the registry's models
(``codec train``, ``torchrun -m codec.training``), export of frozen coding weights
(``codec export``) and a training-speed benchmark (``python -m codec.training.bench``).

The loop owns optimisation, a task owns the objective (:mod:`~codec.training.tasks`
documents the interface between them).  Modules, one idea each:

- :mod:`~codec.training.loop` -- the loop: steps, logging, validation, checkpoint and stop points;
- :mod:`~codec.training.optim` -- optimisers of the task's parameter groups, the lr schedule, the step;
- :mod:`~codec.training.checkpoint` -- checkpoint files and RNG states (exact resume);
- :mod:`~codec.training.distributed` -- device, process group, DDP, sync checks;
- :mod:`~codec.training.logs` -- messages, CSV and TensorBoard logs;
- :mod:`~codec.training.tasks.image_rd` -- rate-distortion training of an image model, validated
  by real coding; :mod:`~codec.training.tasks.fit_picture` -- fitting a network to one picture;
- :mod:`~codec.training.config` (configs), :mod:`~codec.training.data` (crops of folders of
  images), :mod:`~codec.training.models` (registry models for training),
  :mod:`~codec.training.export`, :mod:`~codec.training.bench`, :mod:`~codec.training.cli`.

Imports ``codec.models``, ``codec.entropy`` and, of ``codec``, the media layer
(``codec.media``), ``codec.fileio`` and ``codec.errors``; never the ``codec`` API or
``codec.tools``.
"""
