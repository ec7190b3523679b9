FROM scratch
ADD --from=x a b
