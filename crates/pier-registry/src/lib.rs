//! pier-registry: a registry server implementing the OCI distribution spec.
