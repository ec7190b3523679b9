# syntax=docker/dockerfile:1
# escape=\

FROM busybox AS Base
# a comment
RUN echo a \
    b \
# a comment inside
  && echo c
ENV A=1 \

    B="two words" \
    C=three\ words
LABEL  a=b  c="d e"
CMD echo done \
