//! pier-dockerfile: the Dockerfile language (parser, variable expansion, .dockerignore).
