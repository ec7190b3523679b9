FROM scratch
RUN ["a", 1]
