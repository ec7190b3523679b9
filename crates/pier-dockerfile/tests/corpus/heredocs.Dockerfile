FROM busybox
RUN <<EOF
echo hello
echo $HOME
EOF
RUN <<-"EOT" bash -c 'cat > /x' <<'EOS'
	tabbed
	  line
	EOT
second
EOS
COPY <<one <<"two" /dest/
content one $X
one
content two $X
two
RUN python3 <<PY > /out
print("hi")
PY
RUN echo "<<NOTHEREDOC"
RUN ["echo", "<<EOF"]
ONBUILD RUN <<EOF
echo later
EOF
