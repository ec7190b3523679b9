FROM scratch
RUN --mount=type=bind,mode=0700,target=/x true
