"""spark-submit entry: jobs/report.py --config conf/seglake.yaml"""

import sys

from seglake.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
