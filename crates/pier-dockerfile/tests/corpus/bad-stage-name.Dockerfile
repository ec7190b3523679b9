FROM scratch AS 1x
