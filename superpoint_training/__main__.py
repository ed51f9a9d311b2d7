"""``python -m superpoint_training ...`` is ``superpoint ...`` (torchrun's ``-m`` form:
``torchrun --nproc_per_node N -m superpoint_training export-labels ...``)."""

import sys

from superpoint_training.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
