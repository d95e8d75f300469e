import sys

from omnisense.cli import main

sys.exit(main())
