"""spark-submit entry: jobs/publish.py --config conf/seglake.yaml"""

import sys

from seglake.cli import main

if __name__ == "__main__":
    sys.exit(main(["publish", *sys.argv[1:]]))
