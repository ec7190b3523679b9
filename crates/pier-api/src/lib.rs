//! Docker's API objects as typed structs (grows into issue 12's model).
//!
//! Field names are Docker's (`PascalCase` on the wire); fields Pier does not know yet
//! are kept in each object's `extra` map, so that nothing a client sent is lost when an
//! object is stored and shown again.

pub mod mount;
