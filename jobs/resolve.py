"""spark-submit entry: jobs/resolve.py --config conf/seglake.yaml"""

import sys

from seglake.cli import main

if __name__ == "__main__":
    sys.exit(main(["resolve", *sys.argv[1:]]))
