# Clearpost server image: small, non-root, data in a volume.
#   docker build -t clearpost .
#   docker run -p 8448:8448 -v clearpost-data:/var/lib/clearpost/data clearpost
# See docs/operations.md (and compose.yaml for PostgreSQL).
FROM node:20-slim AS web
WORKDIR /src
COPY web ./web
RUN mkdir -p src/clearpost/web && cd web && npm ci --no-audit --no-fund && npm run build

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
COPY --from=web /src/src/clearpost/web/app ./src/clearpost/web/app
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/clearpost --create-home clearpost
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER clearpost
WORKDIR /var/lib/clearpost
# Listen on every interface of the container; publish the port deliberately.
ENV CLEARPOST_HOST=0.0.0.0 \
    CLEARPOST_DATA_DIR=/var/lib/clearpost/data
VOLUME ["/var/lib/clearpost/data"]
EXPOSE 8448
HEALTHCHECK --interval=30s --timeout=5s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8448/health/live', timeout=4)"]
ENTRYPOINT ["clearpost"]
CMD ["serve"]
