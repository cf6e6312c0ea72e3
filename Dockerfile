# neurograph server, CPU image: `docker build -t neurograph .` then see compose.yaml.
# Not built in CI (tests/test_containers.py lints this file); documented in docs/server.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TQDM_DISABLE=1

WORKDIR /app

# the CPU build of torch first, so that pip does not pull a multi-GB CUDA build
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.4"

COPY pyproject.toml README.md ./
COPY neurograph ./neurograph
# the project itself, with the ranges of its pyproject.toml (a lock file would pin them)
# hadolint ignore=DL3013
RUN pip install ".[server]"

RUN useradd --create-home --uid 10001 neurograph \
    && mkdir -p /data \
    && chown neurograph:neurograph /data
USER 10001

EXPOSE 8000
VOLUME ["/data"]

# binding beyond loopback needs a secret: pass NEUROGRAPH_JWT_SECRET (>= 32 bytes) at run time
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=2).status == 200 else 1)"]

CMD ["neurograph", "serve", "--host", "0.0.0.0", "--port", "8000", "--path", "/data/store"]
