ARG BASE=busybox
ARG VERSION
FROM --platform=$BUILDPLATFORM ${BASE}:${VERSION:-latest} as build
ARG BASE
maintainer Someone <a@b.c>
ENV legacy value with spaces
LABEL legacy "quoted value"
EXPOSE 80/tcp 443 "8080"
VOLUME /data /logs
VOLUME ["/json", "/vol"]
USER app:app
WORKDIR /app dir
ARG a=1 b c="x y"
STOPSIGNAL SIGKILL
SHELL ["/bin/bash", "-c"]
CMD ["run", "--flag"]
CMD run in shell
ENTRYPOINT ["/entry"]
ENTRYPOINT
ENTRYPOINT []
ONBUILD RUN echo triggered  
onbuild copy --chown=1 a b
ONBUILD FOO bar
HEALTHCHECK --interval=30s --timeout=1m30s --start-period=5s --start-interval=1s --retries=3 CMD curl -f http://localhost/
HEALTHCHECK CMD ["/bin/check", "arg"]
HEALTHCHECK NONE
RUN ["/bin/true"]
RUN [not json
CMD ["a", ]
FROM build
