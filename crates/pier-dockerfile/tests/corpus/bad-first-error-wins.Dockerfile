FROM scratch
COPY a
RUN ["a", 1]
