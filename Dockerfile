# syntax=docker/dockerfile:1
# DDSplit container image: every DDSplit binary (ddsplit-fragstore, -splitter, -assembler,
# -gateway and the ddsplit CLI) in one image, run as a non-root user. Kubernetes manifests pick
# the binary with `command:` (see k8s/). Build: docker build -t ddsplit:0.1.0 .
# Without a container engine: k8s/build-image.sh (buildah). The deploy tests check that the
# runtime packages below match what the binaries link (tests/deploy/image.test.mjs).

# ---- build: Debian bookworm with the toolchain and the -dev packages (as scripts/install-deps).
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libzmq3-dev cppzmq-dev libflatbuffers-dev flatbuffers-compiler nlohmann-json3-dev \
      doctest-dev prometheus-cpp-dev libisal-dev librocksdb-dev libcli11-dev libspdlog-dev \
      libcpp-httplib-dev libxxhash-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Only the shipped binaries are built (not the tests). Override to build a subset.
ARG DDSPLIT_TARGETS="ddsplit-fragstore ddsplit-splitter ddsplit-assembler ddsplit-gateway ddsplit"
ARG BUILD_JOBS=2
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g -DNDEBUG" \
 && cmake --build /build -j "${BUILD_JOBS}" --target ${DDSPLIT_TARGETS} \
 && mkdir -p /out \
 && for target in ${DDSPLIT_TARGETS}; do \
      strip --strip-debug -o "/out/${target}" "/build/bin/${target}"; \
    done

# ---- runtime: bookworm-slim plus exactly the packages of the shared libraries the binaries
# link (their dependencies come with them).
FROM debian:bookworm-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ddsplit" \
      org.opencontainers.image.description="DDSplit erasure-coded record store: all binaries" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libcpp-httplib0.11 libfmt9 libisal2 libprometheus-cpp-core1.0 librocksdb7.8 \
      libspdlog1.10 libstdc++6 libgcc-s1 libxxhash0 libzmq5 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
# Fragment stores keep their data under /data (a volume); the root filesystem may be read-only.
RUN mkdir -p /data && chown 65532:65532 /data
USER 65532:65532
WORKDIR /data
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ddsplit"]
CMD ["--help"]
