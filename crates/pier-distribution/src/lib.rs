//! pier-distribution: a client for OCI distribution registries (pull, push, auth).
