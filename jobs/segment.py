"""spark-submit entry: jobs/segment.py --config conf/seglake.yaml"""

import sys

from seglake.cli import main

if __name__ == "__main__":
    sys.exit(main(["segment", *sys.argv[1:]]))
