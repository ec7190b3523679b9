FROM scratch
RUN --mount=type=secret true
