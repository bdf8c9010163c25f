"""Demo target service: a Flask app with versioned behaviour profiles, token auth and a job queue."""
