# benchlab in a container: `docker run IMAGE run -f locustfile.py --host http://target:8000 ...`.
# The same image is the runner, the sidecar and the demo target in docker-compose.benchmark.yml.
# Every dependency installs from a wheel (psycopg2-binary included), so no compiler is needed.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY benchlab ./benchlab
COPY runners ./runners
COPY metrics ./metrics
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A fixed uid and gid (10001), which docker-compose.benchmark.yml runs as unless BENCHLAB_UID/BENCHLAB_GID say otherwise.
RUN groupadd --system --gid 10001 benchlab \
    && useradd --system --uid 10001 --gid benchlab --home-dir /app --no-create-home benchlab
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# `-f NAME` looks NAME up in ./load_tests; results/ holds the SQLite store, the spool and reports/ by default.
COPY load_tests ./load_tests
COPY schema ./schema
COPY prometheus ./prometheus
RUN mkdir -p /app/results/reports && chown -R benchlab:benchlab /app/results
USER 10001:10001
ENTRYPOINT ["benchlab"]
CMD ["--help"]
