"""spark-submit entry for the whole pipeline in one application:
jobs/run_pipeline.py --config conf/seglake.yaml [--from STAGE | --only STAGE]"""

import sys

from seglake.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
