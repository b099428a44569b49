"""spark-submit entry: jobs/erase.py --config conf/seglake.yaml"""

import sys

from seglake.cli import main

if __name__ == "__main__":
    sys.exit(main(["erase", *sys.argv[1:]]))
