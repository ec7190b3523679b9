RUN x
FROM scratch
