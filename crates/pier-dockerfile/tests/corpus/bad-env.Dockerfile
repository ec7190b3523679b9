FROM scratch
ENV A
