//! The embedded DNS server containers on user networks query at 127.0.0.11.
//!
//! It answers A, AAAA and PTR questions for names a [`Resolver`] knows (containers,
//! aliases, hostnames of the requester's networks) and relays everything else to the
//! upstream resolvers, over the same transport the question came on.

pub mod message;
pub mod server;

pub use message::{FormatError, Question};
pub use server::{Resolution, Resolver, Server};
