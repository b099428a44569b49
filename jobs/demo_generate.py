"""spark-submit entry: ``spark-submit jobs/demo_generate.py [--config F] [--scale large] ...``."""

import sys

from seglake.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", "generate", *sys.argv[1:]]))
