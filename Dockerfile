# syntax=docker/dockerfile:1
# GreenGauge: one image for both programs, `energy-agent` and `energy-collector`.
#   docker build -t greengauge .
#   docker run --rm greengauge energy-agent check --config /etc/greengauge/agent.yaml
# The build needs the Python package index and nothing else on the network.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the package needs, so code changes elsewhere keep the layer cache. One image
# for both programs: the agent's dependencies and the collector's (the `collector` extra).
COPY pyproject.toml README.md ./
COPY greengauge ./greengauge
COPY agent ./agent
COPY collector ./collector
RUN python -m venv /opt/greengauge \
    && /opt/greengauge/bin/pip install --no-compile ".[collector]" \
    && /opt/greengauge/bin/energy-agent profiles > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="GreenGauge" \
      org.opencontainers.image.description="Industrial energy monitoring: edge agent and collector"
# A dedicated user; the dialout group lets an agent open serial devices passed with --device.
RUN groupadd --system --gid 10001 greengauge \
    && useradd --system --uid 10001 --gid greengauge --groups dialout \
       --home-dir /var/lib/greengauge --no-create-home --shell /usr/sbin/nologin greengauge \
    && install -d -o greengauge -g greengauge -m 0750 /var/lib/greengauge \
    && install -d -m 0755 /etc/greengauge
COPY --from=build /opt/greengauge /opt/greengauge
COPY deploy/healthcheck.py /usr/local/lib/greengauge/healthcheck.py
ENV PATH=/opt/greengauge/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER greengauge:greengauge
WORKDIR /var/lib/greengauge
VOLUME ["/var/lib/greengauge"]
# See deploy/healthcheck.py: GREENGAUGE_HEALTH_URL or GREENGAUGE_HEALTH_FILE.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/greengauge/healthcheck.py"]
CMD ["energy-collector", "--help"]
