import sys

from callvault.cli import main

sys.exit(main())
