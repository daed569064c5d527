import sys

from kleiod.daemon import main

sys.exit(main())
