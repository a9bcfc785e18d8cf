"""``python -m bosun.runner``: run one attempt of the Run named by the environment."""

from __future__ import annotations

import sys

from bosun.runner import app as runner_app

if __name__ == "__main__":
    sys.exit(runner_app.main())
