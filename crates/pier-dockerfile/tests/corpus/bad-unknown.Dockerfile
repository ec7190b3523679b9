FROM scratch
FROMM x
