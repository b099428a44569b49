"""spark-submit entry: jobs/check.py --config conf/seglake.yaml"""

import sys

from seglake.cli import main

if __name__ == "__main__":
    sys.exit(main(["check", *sys.argv[1:]]))
