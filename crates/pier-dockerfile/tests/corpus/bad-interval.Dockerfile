FROM scratch
HEALTHCHECK --interval=1ns CMD true
