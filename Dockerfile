# tongban relay node.
#   docker build -t tongban .
#   docker run --rm -v "$PWD/fed/420700:/node" -p 50051:50051 \
#     -e TONGBAN_NODE_LISTEN=0.0.0.0:50051 tongban
# The mounted folder is one node's folder from `tongban federation init`; its var/ holds the
# SQLite database and blobs unless TONGBAN_STORAGE_DATABASE / TONGBAN_STORAGE_OBJECTS point
# at PostgreSQL and S3.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto proto
COPY keys keys
COPY storage storage
COPY server server
COPY client client
COPY cli cli
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-wqy-zenhei \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
RUN useradd --system --uid 10001 --home-dir /node tongban
USER tongban
VOLUME /node
EXPOSE 50051
STOPSIGNAL SIGTERM
ENTRYPOINT ["tongban", "-v", "node", "serve"]
CMD ["--config", "/node/node.toml"]
