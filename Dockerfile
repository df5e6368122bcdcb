# paperalerts: one image for every role (web, worker, beat, migrations); the command picks it.
#   docker build -t paperalerts .
#   docker run --rm -p 8000:8000 -v paperalerts-data:/data paperalerts paperalerts run --host 0.0.0.0
# (laptop mode: the SQLite database, its key, the broker file and the outbox live in /data, a
# named volume, so they outlive the container)

FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir "build>=1.2"
COPY pyproject.toml README.md ./
COPY src ./src
COPY templates ./templates
RUN python -m build --wheel --outdir /dist

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl && rm /tmp/*.whl \
    && useradd --create-home --uid 10001 paperalerts \
    && mkdir /data && chown paperalerts:paperalerts /data
# Runs unprivileged; its working directory /data holds the SQLite files in laptop mode (a named
# volume mounted there starts as a copy of this empty directory, owned by paperalerts).
USER paperalerts
WORKDIR /data
EXPOSE 8000
CMD ["paperalerts", "web", "--host", "0.0.0.0", "--port", "8000"]
