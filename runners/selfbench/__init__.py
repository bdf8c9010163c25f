"""`python -m benchlab.runners.selfbench`: benchlab's own overhead measured against bare Locust, nginx and Postgres."""
