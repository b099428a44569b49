"""spark-submit entry: jobs/features.py --config conf/seglake.yaml"""

import sys

from seglake.cli import main

if __name__ == "__main__":
    sys.exit(main(["features", *sys.argv[1:]]))
