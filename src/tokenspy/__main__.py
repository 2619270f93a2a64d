import sys

from tokenspy.cli import main

sys.exit(main())
