FROM scratch
ENV A=1 B
