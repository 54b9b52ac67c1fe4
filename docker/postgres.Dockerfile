# PostgreSQL for docker/compose.postgres.yaml, from Debian's packages on debian:bookworm-slim (no
# other registry is needed). On first start it makes the cluster, with the user and the database
# flowd (password: POSTGRES_PASSWORD), in the volume /var/lib/postgresql/data.
#
#   docker build -t flowd-postgres -f docker/postgres.Dockerfile docker

FROM debian:bookworm-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 700 /var/lib/postgresql/data

COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh

ENV PGDATA=/var/lib/postgresql/data \
    PATH=/usr/lib/postgresql/15/bin:$PATH
VOLUME /var/lib/postgresql/data
USER postgres
EXPOSE 5432
# SIGINT is PostgreSQL's fast shutdown: open transactions roll back, the rest is on disk
STOPSIGNAL SIGINT
HEALTHCHECK --interval=2s --timeout=5s --start-period=30s --retries=30 \
  CMD ["pg_isready", "-h", "127.0.0.1", "-U", "flowd", "-d", "flowd"]
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
