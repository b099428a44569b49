"""spark-submit entry: jobs/refine.py --config conf/seglake.yaml"""

import sys

from seglake.cli import main

if __name__ == "__main__":
    sys.exit(main(["refine", *sys.argv[1:]]))
