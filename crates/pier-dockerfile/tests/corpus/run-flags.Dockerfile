FROM busybox
RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1000,gid=1000 \
    --mount=type=bind,from=builder,source=/out,target=/in,rw \
    --mount=type=tmpfs,target=/tmp,size=64m \
    --mount=type=secret,id=token,required,env=TOKEN \
    --mount=type=ssh,required=true \
    --mount=target=/ctx \
    --network=none \
    pip install x
RUN --network=host true
RUN --security=sandbox true
