
# only a comment

