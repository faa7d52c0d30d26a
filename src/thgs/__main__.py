import sys

from thgs.cli import main

sys.exit(main())
