FROM scratch
ONBUILD from x
