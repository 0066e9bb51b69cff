"""``python -m codec.training --config FILE`` (also under ``torchrun --nproc_per_node N -m codec.training``)."""
import sys

from codec.training.cli import main

sys.exit(main())
