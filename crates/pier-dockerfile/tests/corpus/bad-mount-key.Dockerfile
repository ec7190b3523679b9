FROM scratch
RUN --mount=type=cache,targt=/x true
