import sys

from gemmap.cli import main

sys.exit(main())
