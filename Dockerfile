# ssegate container image.
#
#   docker build -t ssegate .
#   docker run --rm -p 80:8080 -v "$PWD/deploy/ssegate.yaml:/etc/ssegate/ssegate.yaml:ro" ssegate
#
# The config lives at /etc/ssegate/ssegate.yaml (the image ships deploy/ssegate.yaml there as
# a default; mount your own over it). Validate a config with the image itself:
#   docker run --rm -v "$PWD/my.yaml:/etc/ssegate/ssegate.yaml:ro" ssegate check -c /etc/ssegate/ssegate.yaml
# Reload it without a restart: docker kill -s HUP <container>  (ssegate handles SIGHUP,
# SIGTERM and SIGINT itself as PID 1 and starts no child processes, so no init is needed).

# ---- build ----------------------------------------------------------------------------
FROM rust:1-bookworm AS build

# cmake: pingora-core builds zlib-ng with it. The image already has gcc and make.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first, against placeholder sources, so that this layer (most of the build
# time) is reused until Cargo.toml or Cargo.lock change. The placeholder bench is there
# because Cargo refuses a manifest whose declared [[bench]] file is missing.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/observe.rs \
 && cargo build --release --locked --bin ssegate \
 && rm -rf src

# Then ssegate itself. `cargo clean -p ssegate` drops the placeholder's artifacts: COPY keeps
# the files' own modification times, normally older than the placeholder build, and Cargo
# would then keep the empty binary.
# The release profile keeps line tables for profiling (debug = 1, ~100 MB); the image drops
# them but keeps the symbols, so panics and backtraces still name functions (~16 MB).
COPY src ./src
RUN cargo clean --release -p ssegate \
 && cargo build --release --locked --bin ssegate \
 && mkdir -p /out \
 && objcopy --strip-debug target/release/ssegate /out/ssegate

# ---- runtime --------------------------------------------------------------------------
FROM debian:bookworm-slim

# The HEALTHCHECK needs an HTTP client and the slim image has none; ssegate has no
# health-check subcommand either. busybox's wget rather than curl: curl, even with
# --no-install-recommends, pulls in libcurl and its TLS, SSH, LDAP and Kerberos libraries
# (more megabytes and more CVEs to patch) for a plain-HTTP request to loopback; busybox is
# one binary that needs only libc. Its wget exits non-zero on a non-2xx answer.
RUN apt-get update \
 && apt-get install -y --no-install-recommends busybox \
 && rm -rf /var/lib/apt/lists/*

# A fixed numeric UID, so that runAsNonRoot-style checks can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 ssegate \
 && useradd --system --uid 10001 --gid ssegate --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin ssegate

COPY --from=build /out/ssegate /usr/local/bin/ssegate
COPY deploy/ssegate.yaml /etc/ssegate/ssegate.yaml

USER 10001:10001

# 8080: the public listener (publish it, e.g. -p 80:8080). 9901: the admin listener
# (/metrics, /healthz, /streams), for Prometheus on the same container network; never
# publish it on a host port.
EXPOSE 8080 9901

# /healthz answers 200 once the listeners are up. The check runs inside the container, so
# it reaches the admin listener on loopback (the deploy config binds 0.0.0.0:9901, which
# includes loopback). If your config moves the admin port, change it here too.
# --timeout bounds a hung check: Debian's busybox wget has no working -T (it crashes).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9901/healthz"]

ENTRYPOINT ["/usr/local/bin/ssegate"]
CMD ["run", "-c", "/etc/ssegate/ssegate.yaml"]
