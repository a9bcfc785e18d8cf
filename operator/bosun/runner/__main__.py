"""``python -m bosun.runner``: run one attempt of the Run named by the environment;
``python -m bosun.runner pool``: a pool worker claiming its Agent's attempts (``pool``)."""

from __future__ import annotations

import os
import sys

from bosun import constants

if __name__ == "__main__":
    # The runner validates objects with the API models but never renders their schemas, so it
    # builds them without descriptions (a start-up saving; see constants.ENV_SCHEMA_DESCRIPTIONS).
    os.environ.setdefault(constants.ENV_SCHEMA_DESCRIPTIONS, "0")
    if sys.argv[1:] == ["pool"]:
        from bosun.runner import pool

        sys.exit(pool.main())
    from bosun.runner import app

    sys.exit(app.main())
