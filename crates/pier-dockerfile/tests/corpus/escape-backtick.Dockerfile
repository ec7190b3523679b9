# escape=`
FROM busybox
WORKDIR c:\dir `
  \sub
RUN echo a`
 b
ENV X=a`"b
