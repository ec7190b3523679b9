FROM busybox AS builder
FROM busybox
COPY --from=builder --chown=1000:1000 --chmod=0755 --link --exclude=*.md --exclude=*.txt --parents a b /dest/
COPY ["with space", "other", "/dest dir/"]
COPY "quoted name" /x
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d --chmod=u+x,g-w https://example.com/x.tar.gz /
ADD --keep-git-dir=true https://github.com/a/b.git#main /src
ADD --link=false a.tar /
