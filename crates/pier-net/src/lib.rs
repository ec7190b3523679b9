//! Container networking for Pier, as plumbing: no daemon state lives here.
//!
//! - [`netns`]: persistent network namespaces (a bind-mounted nsfs file), and running
//!   code inside one.
//! - [`link`]: bridges, veth pairs, addresses and routes over a synchronous rtnetlink
//!   socket (no async runtime: usable from the single-threaded paths and from a thread
//!   that entered a container's namespace).
//! - [`ipam`]: choosing subnets that collide with nothing on the host, and addresses.
//! - [`firewall`]: NAT, port publishing and isolation in Pier's own nftables table,
//!   and host port reservations.

pub mod firewall;
pub mod ipam;
pub mod link;
pub mod netns;
