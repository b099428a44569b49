"""spark-submit entry: jobs/measure.py --config conf/seglake.yaml"""

import sys

from seglake.cli import main

if __name__ == "__main__":
    sys.exit(main(["measure", *sys.argv[1:]]))
