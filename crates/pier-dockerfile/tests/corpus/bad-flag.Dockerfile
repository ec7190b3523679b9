FROM scratch
COPY --chmodd=1 a b
