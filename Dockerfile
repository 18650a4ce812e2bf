# syntax=docker/dockerfile:1
# The relaymq broker. Build from the repository root:
#   docker build -t relaymq:0.1.0 .
#   docker run -p 7401:7401 -p 9401:9401 relaymq:0.1.0
# Any broker option can be given as a flag after `broker` or as a RELAYMQ_*
# variable (see `relaymq broker --help`); compose.yaml runs a 3-broker cluster.

# ---- build: compile both workspaces with the dev toolchain ------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY packages/sdk/package.json packages/sdk/
COPY packages/broker/package.json packages/broker/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY packages/ packages/
RUN npm run build

# ---- deps: production dependencies only (the workspace links stay) ----------------
FROM node:20-bookworm-slim AS deps
WORKDIR /src
COPY package.json package-lock.json ./
COPY packages/sdk/package.json packages/sdk/
COPY packages/broker/package.json packages/broker/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime: no compiler, no sources, not root ----------------------------------
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    RELAYMQ_HOST=0.0.0.0 \
    RELAYMQ_ADMIN_PORT=9401 \
    RELAYMQ_DATA_DIR=/var/lib/relaymq \
    RELAYMQ_LOG_LEVEL=info
WORKDIR /app
COPY --from=deps /src/node_modules node_modules
COPY --from=deps /src/package.json ./
COPY --from=build /src/packages/sdk/package.json packages/sdk/
COPY --from=build /src/packages/sdk/dist packages/sdk/dist
COPY --from=build /src/packages/broker/package.json packages/broker/
COPY --from=build /src/packages/broker/dist packages/broker/dist
COPY --from=build /src/packages/broker/bin packages/broker/bin
# The data directory belongs to the unprivileged `node` user of the base image (uid 1000);
# a named volume mounted here starts with this ownership.
RUN mkdir -p /var/lib/relaymq && chown node:node /var/lib/relaymq
USER node
VOLUME /var/lib/relaymq
# client, peer, admin (/metrics, /healthz, /readyz, dashboard)
EXPOSE 7401 7501 9401
# Liveness only: /healthz answers while the process serves HTTP. Readiness (/readyz) needs a
# metadata leader, which a cluster still forming lacks, so it is left to orchestrators.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9401/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains: leaderships handed over, clients sent `goaway` (drain-timeout-ms each).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/packages/broker/bin/relaymq.js"]
CMD ["broker"]
