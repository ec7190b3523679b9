FROM scratch
COPY --link --link a b
