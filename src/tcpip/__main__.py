"""`python -m tcpip`: the same as the `tcpip` command."""

import sys

from tcpip.cli import main

sys.exit(main())
