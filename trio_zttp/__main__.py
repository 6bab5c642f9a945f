"""``python -m trio_zttp``: the command line (``serve``, ``get``, ``demo``)."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
