"""spark-submit entry: jobs/score.py --config conf/seglake.yaml"""

import sys

from seglake.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
