"""Entry point of `python -m runners.selfbench` (what `make selfbench` runs)."""

from runners.selfbench.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
