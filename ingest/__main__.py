import sys

from ingest.server.cli import main

sys.exit(main())
