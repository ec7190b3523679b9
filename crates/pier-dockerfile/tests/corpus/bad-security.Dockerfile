FROM scratch
RUN --security=insecure true
