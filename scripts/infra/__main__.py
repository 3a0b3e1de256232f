import sys

from scripts.infra.cli import main

sys.exit(main())
