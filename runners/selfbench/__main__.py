"""Entry point of `python -m benchlab.runners.selfbench` (what `make selfbench` runs)."""

from benchlab.runners.selfbench.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
