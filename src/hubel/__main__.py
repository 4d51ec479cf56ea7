import sys

from hubel.cli.main import main

sys.exit(main())
