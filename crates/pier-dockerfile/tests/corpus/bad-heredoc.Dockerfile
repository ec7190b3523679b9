FROM scratch
RUN <<EOF
x
