FROM scratch
RUN --mount=type=cach,target=/x true
