//! IP address management: subnets that collide with nothing, and addresses in them.
//!
//! Everything here is pure arithmetic over [`IpNet`]s (plus a few random bytes for
//! [`random_ula_subnet`]); the daemon owns the state (which subnets and addresses are
//! in use) and passes it in.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// What IPAM refuses, in Docker's words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    /// invalid pool request: Pool overlaps with other one on this address space
    #[error("invalid pool request: Pool overlaps with other one on this address space")]
    Overlap,
    /// could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    PoolsExhausted,
    /// no available addresses on this pool
    #[error("no available addresses on this pool")]
    NoAddress,
    /// Address already in use
    #[error("Address already in use")]
    AddressInUse,
    /// invalid address {address}: it does not belong to any of this network's subnets
    #[error("no configured subnet or ip-range contain the IP address {0}")]
    OutOfRange(IpAddr),
    /// invalid value ({0})
    #[error("{0}")]
    Invalid(String),
}

/// A pool subnets are carved from (`--default-address-pool base=…,size=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub base: IpNet,
    /// Prefix length of each subnet taken from it.
    pub size: u8,
}

/// Docker's default pools: 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 in /20s.
///
/// Same list, in the same order, as Docker's `defaultipam`: 172.17/16, 172.18/16,
/// 172.19/16, 172.20/14, 172.24/14 and 172.28/14 cut in /16s, then 192.168/16 in /20s.
pub fn default_pools() -> Vec<Pool> {
    [
        ("172.17.0.0/16", 16),
        ("172.18.0.0/16", 16),
        ("172.19.0.0/16", 16),
        ("172.20.0.0/14", 16),
        ("172.24.0.0/14", 16),
        ("172.28.0.0/14", 16),
        ("192.168.0.0/16", 20),
    ]
    .into_iter()
    .map(|(base, size)| Pool {
        base: base.parse().expect("static pool"),
        size,
    })
    .collect()
}

/// Parses `base=10.10.0.0/16,size=24`.
///
/// Errors carry Docker's texts (`invalid field '…' must be a key=value pair`,
/// `unexpected key '…' in '…'`, `invalid base pool "…": …`, `invalid pools size: N`).
pub fn parse_pool(text: &str) -> Result<Pool, IpamError> {
    let mut base: Option<String> = None;
    let mut size: i64 = 0;
    for field in text.split(',') {
        // Docker lowercases the whole field (keys are case-insensitive).
        let lowered = field.trim().to_ascii_lowercase();
        let Some((key, value)) = lowered.split_once('=') else {
            return Err(IpamError::Invalid(format!(
                "invalid field '{field}' must be a key=value pair"
            )));
        };
        match key {
            "base" => base = Some(value.to_string()),
            "size" => {
                size = value.parse::<i64>().map_err(|_| {
                    IpamError::Invalid(format!(
                        "invalid size value: {text:?} (must be integer): strconv.Atoi: parsing {value:?}: invalid syntax"
                    ))
                })?;
            }
            _ => {
                return Err(IpamError::Invalid(format!(
                    "unexpected key '{key}' in '{field}'"
                )))
            }
        }
    }
    let base_text = base.unwrap_or_default();
    let base: IpNet = base_text.parse().map_err(|_| {
        IpamError::Invalid(format!(
            "invalid base pool {base_text:?}: invalid CIDR address: {base_text}"
        ))
    })?;
    let base = base.trunc();
    if size <= 0 || size < i64::from(base.prefix_len()) || size > i64::from(base.max_prefix_len()) {
        return Err(IpamError::Invalid(format!("invalid pools size: {size}")));
    }
    Ok(Pool {
        base,
        size: size as u8,
    })
}

/// The first subnet of `pools` (in order) that overlaps none of `taken` (the host's
/// routes and addresses, and the subnets of existing networks).
///
/// Pools whose `size` is shorter than their base's prefix or longer than the family
/// allows are skipped. Cost is linear in `taken` per candidate, and candidates skip
/// past whatever they collided with, so huge pools (a v6 /48 in /64s) are cheap.
pub fn choose_subnet(pools: &[Pool], taken: &[IpNet]) -> Result<IpNet, IpamError> {
    for pool in pools {
        if let Some(subnet) = first_free_in_pool(pool, taken) {
            return Ok(subnet);
        }
    }
    Err(IpamError::PoolsExhausted)
}

fn first_free_in_pool(pool: &Pool, taken: &[IpNet]) -> Option<IpNet> {
    let base = pool.base.trunc();
    let bits = base.max_prefix_len();
    if pool.size < base.prefix_len() || pool.size > bits {
        return None;
    }
    let v4 = is_v4(&base);
    let start = addr_to_u128(base.network());
    let end = addr_to_u128(base.broadcast());
    // Size of each candidate; None when a candidate is the whole v6 space (size 0).
    let step = 1u128.checked_shl(u32::from(bits - pool.size));
    let mut candidate = start;
    loop {
        let last = match step {
            Some(step) => candidate + (step - 1),
            None => u128::MAX,
        };
        // The collision reaching furthest: skip past it in one go.
        let furthest = taken
            .iter()
            .filter(|t| is_v4(t) == v4)
            .map(|t| (addr_to_u128(t.network()), addr_to_u128(t.broadcast())))
            .filter(|&(t_first, t_last)| t_first <= last && candidate <= t_last)
            .map(|(_, t_last)| t_last)
            .max();
        let Some(t_last) = furthest else {
            return IpNet::new(u128_to_addr(candidate, v4), pool.size).ok();
        };
        let step = step?;
        let next = t_last.checked_add(1)?;
        let aligned = next.checked_add(step - 1)? & !(step - 1);
        if aligned > end || aligned <= candidate {
            return None;
        }
        candidate = aligned;
    }
}

/// A random unique-local IPv6 /64 (fdXX:…::/64), for `--ipv6` networks without a subnet.
///
/// RFC 4193: `fd` + a 40-bit random global ID + a 16-bit (here random too) subnet ID.
pub fn random_ula_subnet() -> IpNet {
    let mut random = [0u8; 7];
    fill_random(&mut random);
    let mut octets = [0u8; 16];
    octets[0] = 0xfd;
    octets[1..8].copy_from_slice(&random);
    IpNet::new(IpAddr::V6(Ipv6Addr::from(octets)), 64).expect("/64 is a valid v6 prefix")
}

/// Fills `buf` from getrandom(2), falling back to /dev/urandom, and as a last resort
/// (neither available: a broken sandbox) to a clock/pid hash: uniqueness, not secrecy,
/// is what a ULA prefix needs.
fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, a live, writable byte slice
        // that getrandom writes at most `rest.len()` bytes into.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            filled += n as usize;
            continue;
        }
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break;
    }
    if filled == buf.len() {
        return;
    }
    if let Ok(mut file) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        if file.read_exact(buf).is_ok() {
            return;
        }
    }
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    let value = hasher.finish().to_le_bytes();
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte = value[i % value.len()];
    }
}

/// The gateway Docker picks: the first host address of the subnet.
///
/// (For a /32 or /128, which has no host address after the network one, the subnet's
/// only address.)
pub fn default_gateway(subnet: &IpNet) -> IpAddr {
    let v4 = is_v4(subnet);
    let network = addr_to_u128(subnet.network());
    if subnet.prefix_len() < subnet.max_prefix_len() {
        u128_to_addr(network + 1, v4)
    } else {
        u128_to_addr(network, v4)
    }
}

/// The lowest free host address of `range` (or of `subnet` when no range), skipping
/// the network and broadcast addresses and everything in `taken` (gateway, aux
/// addresses, addresses in use).
///
/// The network address (for IPv6: the subnet-router anycast address) and the IPv4
/// broadcast address are those of `subnet`, not of `range`; they are only reserved
/// when the subnet has more than two addresses (a v4 /31 and /32, a v6 /127 and /128
/// use every address). A `range` partly outside `subnet` is cut to the subnet.
pub fn allocate(
    subnet: &IpNet,
    range: Option<&IpNet>,
    taken: &HashSet<IpAddr>,
) -> Result<IpAddr, IpamError> {
    let v4 = is_v4(subnet);
    let mut first = addr_to_u128(subnet.network());
    let mut last = addr_to_u128(subnet.broadcast());
    if let Some(range) = range {
        if is_v4(range) != v4 {
            return Err(IpamError::NoAddress);
        }
        first = first.max(addr_to_u128(range.network()));
        last = last.min(addr_to_u128(range.broadcast()));
        if first > last {
            return Err(IpamError::NoAddress);
        }
    }
    // Every taken address is skipped at most once, so this stops after at most
    // `taken.len() + 3` steps unless the range runs out first.
    let mut candidate = first;
    loop {
        let address = u128_to_addr(candidate, v4);
        if !reserved(subnet, address) && !taken.contains(&address) {
            return Ok(address);
        }
        if candidate == last {
            return Err(IpamError::NoAddress);
        }
        candidate += 1;
    }
}

/// Checks a requested static address: inside `subnet` (and `range` if given… Docker
/// only requires the subnet), not the network or broadcast address, not in `taken`.
///
/// Outside the subnet (or of the other family): [`IpamError::OutOfRange`]; the
/// network/broadcast address or a taken one: [`IpamError::AddressInUse`] (Docker
/// reserves the former in the same bitmap as allocated addresses).
pub fn check_static(
    subnet: &IpNet,
    address: IpAddr,
    taken: &HashSet<IpAddr>,
) -> Result<(), IpamError> {
    if !subnet.contains(&address) {
        return Err(IpamError::OutOfRange(address));
    }
    if reserved(subnet, address) || taken.contains(&address) {
        return Err(IpamError::AddressInUse);
    }
    Ok(())
}

/// Whether `address` (inside `subnet`) is its network/anycast or IPv4 broadcast address.
fn reserved(subnet: &IpNet, address: IpAddr) -> bool {
    // v4 /31 and /32, v6 /127 and /128: every address is a host address.
    if subnet.prefix_len() + 1 >= subnet.max_prefix_len() {
        return false;
    }
    if address == subnet.network() {
        return true;
    }
    is_v4(subnet) && address == subnet.broadcast()
}

fn is_v4(net: &IpNet) -> bool {
    matches!(net, IpNet::V4(_))
}

fn addr_to_u128(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn u128_to_addr(value: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(value as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn set(items: &[&str]) -> HashSet<IpAddr> {
        items.iter().map(|s| ip(s)).collect()
    }

    #[test]
    fn default_pools_cover_docker_ranges() {
        let pools = default_pools();
        let mut subnets = Vec::new();
        for pool in &pools {
            subnets.extend(pool.base.subnets(pool.size).unwrap());
        }
        assert_eq!(subnets.len(), 15 + 16);
        assert_eq!(subnets[0], net("172.17.0.0/16"));
        assert_eq!(subnets[14], net("172.31.0.0/16"));
        for (i, s) in subnets[..15].iter().enumerate() {
            assert_eq!(*s, net(&format!("172.{}.0.0/16", 17 + i)));
        }
        assert_eq!(subnets[15], net("192.168.0.0/20"));
        assert_eq!(subnets[16], net("192.168.16.0/20"));
        assert_eq!(subnets[30], net("192.168.240.0/20"));
    }

    #[test]
    fn parse_pool_ok() {
        assert_eq!(
            parse_pool("base=10.10.0.0/16,size=24").unwrap(),
            Pool {
                base: net("10.10.0.0/16"),
                size: 24
            }
        );
        // Order, case and host bits in the base do not matter.
        assert_eq!(
            parse_pool("Size=20,BASE=10.10.1.2/16").unwrap(),
            Pool {
                base: net("10.10.0.0/16"),
                size: 20
            }
        );
        assert_eq!(
            parse_pool("base=FD00:AB::/48,size=64").unwrap(),
            Pool {
                base: net("fd00:ab::/48"),
                size: 64
            }
        );
        assert_eq!(parse_pool("base=10.0.0.0/8,size=8").unwrap().size, 8);
        assert_eq!(parse_pool("base=10.0.0.0/8,size=32").unwrap().size, 32);
    }

    #[test]
    fn parse_pool_errors() {
        let err = |s: &str| parse_pool(s).unwrap_err().to_string();
        assert_eq!(
            err("base=10.10.0.0/16,size"),
            "invalid field 'size' must be a key=value pair"
        );
        assert_eq!(
            err("base=10.10.0.0/16,foo=1"),
            "unexpected key 'foo' in 'foo=1'"
        );
        assert!(err("base=10.10.0.0/16,size=x")
            .starts_with("invalid size value: \"base=10.10.0.0/16,size=x\" (must be integer)"));
        assert_eq!(
            err("base=10.10.0.0,size=24"),
            "invalid base pool \"10.10.0.0\": invalid CIDR address: 10.10.0.0"
        );
        assert_eq!(
            err("size=24"),
            "invalid base pool \"\": invalid CIDR address: "
        );
        assert_eq!(err("base=10.10.0.0/16"), "invalid pools size: 0");
        assert_eq!(err("base=10.10.0.0/16,size=8"), "invalid pools size: 8");
        assert_eq!(err("base=10.10.0.0/16,size=33"), "invalid pools size: 33");
        assert_eq!(err("base=10.10.0.0/16,size=-1"), "invalid pools size: -1");
        assert_eq!(err("base=fd00::/48,size=129"), "invalid pools size: 129");
        assert!(matches!(
            parse_pool("base=1/2,size=3"),
            Err(IpamError::Invalid(_))
        ));
    }

    #[test]
    fn choose_first_free() {
        let pools = default_pools();
        assert_eq!(choose_subnet(&pools, &[]).unwrap(), net("172.17.0.0/16"));
        // docker0 and a host route in 172.18.5.0/24.
        let taken = [net("172.17.0.0/16"), net("172.18.5.0/24")];
        assert_eq!(choose_subnet(&pools, &taken).unwrap(), net("172.19.0.0/16"));
        // A host address (/32) inside a candidate also rules it out.
        let taken = [net("172.17.0.1/32"), net("172.18.0.0/15")];
        assert_eq!(choose_subnet(&pools, &taken).unwrap(), net("172.20.0.0/16"));
        // A supernet covering all 172.16/12 pools: straight to 192.168.
        let taken = [net("172.16.0.0/12")];
        assert_eq!(
            choose_subnet(&pools, &taken).unwrap(),
            net("192.168.0.0/20")
        );
        let taken = [
            net("172.16.0.0/12"),
            net("192.168.0.0/24"),
            net("192.168.17.0/24"),
        ];
        assert_eq!(
            choose_subnet(&pools, &taken).unwrap(),
            net("192.168.32.0/20")
        );
        // IPv6 entries never collide with v4 pools.
        let taken = [net("::/0")];
        assert_eq!(choose_subnet(&pools, &taken).unwrap(), net("172.17.0.0/16"));
    }

    #[test]
    fn choose_exhausted() {
        let pools = default_pools();
        let taken = [net("172.16.0.0/12"), net("192.168.0.0/16")];
        assert_eq!(
            choose_subnet(&pools, &taken),
            Err(IpamError::PoolsExhausted)
        );
        assert_eq!(choose_subnet(&[], &[]), Err(IpamError::PoolsExhausted));
        let taken = [net("0.0.0.0/0")];
        assert_eq!(
            choose_subnet(&pools, &taken),
            Err(IpamError::PoolsExhausted)
        );
        assert_eq!(
            IpamError::PoolsExhausted.to_string(),
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
        );
    }

    #[test]
    fn choose_custom_pools_in_order() {
        let pools = [
            parse_pool("base=10.10.0.0/16,size=24").unwrap(),
            parse_pool("base=10.20.0.0/16,size=24").unwrap(),
        ];
        let taken: Vec<IpNet> = (0..=255)
            .filter(|i| i % 7 != 3)
            .map(|i| net(&format!("10.10.{i}.0/24")))
            .collect();
        assert_eq!(choose_subnet(&pools, &taken).unwrap(), net("10.10.3.0/24"));
        let taken = [net("10.10.0.0/16")];
        assert_eq!(choose_subnet(&pools, &taken).unwrap(), net("10.20.0.0/24"));
        // A large v6 pool with its start taken: skips in one step.
        let pools = [parse_pool("base=fd00::/16,size=64").unwrap()];
        let taken = [net("fd00::/17"), net("fd00:8000::1/128")];
        assert_eq!(
            choose_subnet(&pools, &taken).unwrap(),
            net("fd00:8000:0:1::/64")
        );
        // A pool whose size is the whole address space.
        let pools = [Pool {
            base: net("::/0"),
            size: 0,
        }];
        assert_eq!(choose_subnet(&pools, &[]).unwrap(), net("::/0"));
        assert_eq!(
            choose_subnet(&pools, &[net("fd00::/8")]),
            Err(IpamError::PoolsExhausted)
        );
        // End of the address space does not overflow.
        let pools = [Pool {
            base: net("255.255.255.0/24"),
            size: 25,
        }];
        assert_eq!(
            choose_subnet(&pools, &[net("255.255.255.0/25")]).unwrap(),
            net("255.255.255.128/25")
        );
        assert_eq!(
            choose_subnet(
                &pools,
                &[net("255.255.255.0/25"), net("255.255.255.255/32")]
            ),
            Err(IpamError::PoolsExhausted)
        );
        let pools = [Pool {
            base: net("ffff:ffff:ffff:ffff::/64"),
            size: 65,
        }];
        assert_eq!(
            choose_subnet(&pools, &[net("ffff:ffff:ffff:ffff::/64")]),
            Err(IpamError::PoolsExhausted)
        );
        // Invalid sizes: the pool is skipped.
        let pools = [
            Pool {
                base: net("10.0.0.0/16"),
                size: 8,
            },
            Pool {
                base: net("10.1.0.0/16"),
                size: 40,
            },
        ];
        assert_eq!(choose_subnet(&pools, &[]), Err(IpamError::PoolsExhausted));
    }

    #[test]
    fn ula_subnets_are_random_fd_64s() {
        let a = random_ula_subnet();
        let b = random_ula_subnet();
        assert_ne!(a, b);
        for s in [a, b] {
            assert_eq!(s.prefix_len(), 64);
            assert_eq!(s, s.trunc());
            let IpAddr::V6(addr) = s.addr() else {
                panic!("not v6: {s}")
            };
            assert_eq!(addr.octets()[0], 0xfd);
            assert!(net("fd00::/8").contains(&s));
        }
    }

    #[test]
    fn gateways() {
        assert_eq!(default_gateway(&net("172.17.0.0/16")), ip("172.17.0.1"));
        assert_eq!(default_gateway(&net("10.1.2.3/24")), ip("10.1.2.1"));
        assert_eq!(default_gateway(&net("fd12:3456::/64")), ip("fd12:3456::1"));
        assert_eq!(default_gateway(&net("10.0.0.0/31")), ip("10.0.0.1"));
        assert_eq!(default_gateway(&net("10.0.0.7/32")), ip("10.0.0.7"));
    }

    #[test]
    fn allocate_lowest_free_v4() {
        let subnet = net("172.18.0.0/16");
        assert_eq!(
            allocate(&subnet, None, &HashSet::new()).unwrap(),
            ip("172.18.0.1")
        );
        let taken = set(&["172.18.0.1", "172.18.0.2", "172.18.0.4"]);
        assert_eq!(allocate(&subnet, None, &taken).unwrap(), ip("172.18.0.3"));
        let taken = set(&["172.18.0.1", "172.18.0.2", "172.18.0.3", "10.0.0.1"]);
        assert_eq!(allocate(&subnet, None, &taken).unwrap(), ip("172.18.0.4"));
    }

    #[test]
    fn allocate_exhaustion_skips_network_and_broadcast() {
        let subnet = net("10.0.0.0/30");
        let mut taken = HashSet::new();
        let a = allocate(&subnet, None, &taken).unwrap();
        assert_eq!(a, ip("10.0.0.1"));
        taken.insert(a);
        let b = allocate(&subnet, None, &taken).unwrap();
        assert_eq!(b, ip("10.0.0.2"));
        taken.insert(b);
        assert_eq!(allocate(&subnet, None, &taken), Err(IpamError::NoAddress));
        // /31 and /32: every address is usable.
        assert_eq!(
            allocate(&net("10.0.0.0/31"), None, &HashSet::new()).unwrap(),
            ip("10.0.0.0")
        );
        assert_eq!(
            allocate(&net("10.0.0.0/31"), None, &set(&["10.0.0.0"])).unwrap(),
            ip("10.0.0.1")
        );
        assert_eq!(
            allocate(&net("10.0.0.9/32"), None, &HashSet::new()).unwrap(),
            ip("10.0.0.9")
        );
        assert_eq!(
            allocate(&net("10.0.0.9/32"), None, &set(&["10.0.0.9"])),
            Err(IpamError::NoAddress)
        );
        // The last address of the whole space is the broadcast of its subnet.
        let subnet = net("255.255.255.252/30");
        let taken = set(&["255.255.255.253", "255.255.255.254"]);
        assert_eq!(allocate(&subnet, None, &taken), Err(IpamError::NoAddress));
    }

    #[test]
    fn allocate_in_range() {
        let subnet = net("172.20.0.0/16");
        let range = net("172.20.10.0/24");
        // The range's first address is a host address of the subnet.
        assert_eq!(
            allocate(&subnet, Some(&range), &HashSet::new()).unwrap(),
            ip("172.20.10.0")
        );
        let taken = set(&["172.20.10.0", "172.20.10.1", "172.20.0.1"]);
        assert_eq!(
            allocate(&subnet, Some(&range), &taken).unwrap(),
            ip("172.20.10.2")
        );
        // A range at the start of the subnet still skips the network address, and one at
        // its end the broadcast.
        let range = net("172.20.0.0/30");
        assert_eq!(
            allocate(
                &subnet,
                Some(&range),
                &set(&["172.20.0.1", "172.20.0.2", "172.20.0.3"])
            ),
            Err(IpamError::NoAddress)
        );
        let range = net("172.20.255.252/30");
        let taken = set(&["172.20.255.252", "172.20.255.253", "172.20.255.254"]);
        assert_eq!(
            allocate(&subnet, Some(&range), &taken),
            Err(IpamError::NoAddress)
        );
        // Ranges outside the subnet or of the other family.
        assert_eq!(
            allocate(&subnet, Some(&net("10.0.0.0/24")), &HashSet::new()),
            Err(IpamError::NoAddress)
        );
        assert_eq!(
            allocate(&subnet, Some(&net("fd00::/64")), &HashSet::new()),
            Err(IpamError::NoAddress)
        );
        // A range wider than the subnet is cut to it.
        assert_eq!(
            allocate(
                &net("10.1.2.0/24"),
                Some(&net("10.0.0.0/8")),
                &HashSet::new()
            )
            .unwrap(),
            ip("10.1.2.1")
        );
    }

    #[test]
    fn allocate_v6() {
        let subnet = net("fd00:1::/64");
        assert_eq!(
            allocate(&subnet, None, &HashSet::new()).unwrap(),
            ip("fd00:1::1")
        );
        let taken = set(&["fd00:1::1", "fd00:1::2"]);
        assert_eq!(allocate(&subnet, None, &taken).unwrap(), ip("fd00:1::3"));
        // The last address is usable in v6 (no broadcast).
        let subnet = net("fd00:1::/126");
        let taken = set(&["fd00:1::1", "fd00:1::2"]);
        assert_eq!(allocate(&subnet, None, &taken).unwrap(), ip("fd00:1::3"));
        let taken = set(&["fd00:1::1", "fd00:1::2", "fd00:1::3"]);
        assert_eq!(allocate(&subnet, None, &taken), Err(IpamError::NoAddress));
        // Range starting at the subnet-router anycast address skips it.
        let subnet = net("fd00:1::/64");
        let range = net("fd00:1::/120");
        assert_eq!(
            allocate(&subnet, Some(&range), &HashSet::new()).unwrap(),
            ip("fd00:1::1")
        );
        let range = net("fd00:1::100/120");
        assert_eq!(
            allocate(&subnet, Some(&range), &HashSet::new()).unwrap(),
            ip("fd00:1::100")
        );
        // The end of the v6 space does not overflow.
        let subnet = net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126");
        let taken = set(&[
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
        ]);
        assert_eq!(
            allocate(&subnet, None, &taken).unwrap(),
            ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
        );
    }

    #[test]
    fn static_addresses() {
        let subnet = net("172.18.0.0/16");
        let taken = set(&["172.18.0.1", "172.18.0.5"]);
        assert_eq!(check_static(&subnet, ip("172.18.0.2"), &taken), Ok(()));
        assert_eq!(check_static(&subnet, ip("172.18.200.9"), &taken), Ok(()));
        assert_eq!(
            check_static(&subnet, ip("172.18.0.5"), &taken),
            Err(IpamError::AddressInUse)
        );
        assert_eq!(
            check_static(&subnet, ip("172.18.0.1"), &taken),
            Err(IpamError::AddressInUse)
        );
        assert_eq!(
            check_static(&subnet, ip("172.18.0.0"), &taken),
            Err(IpamError::AddressInUse)
        );
        assert_eq!(
            check_static(&subnet, ip("172.18.255.255"), &taken),
            Err(IpamError::AddressInUse)
        );
        assert_eq!(
            check_static(&subnet, ip("172.19.0.2"), &taken),
            Err(IpamError::OutOfRange(ip("172.19.0.2")))
        );
        assert_eq!(
            check_static(&subnet, ip("fd00::2"), &taken),
            Err(IpamError::OutOfRange(ip("fd00::2")))
        );
        assert_eq!(
            IpamError::OutOfRange(ip("172.19.0.2")).to_string(),
            "no configured subnet or ip-range contain the IP address 172.19.0.2"
        );
        assert_eq!(
            IpamError::AddressInUse.to_string(),
            "Address already in use"
        );
        let subnet = net("fd00:2::/64");
        assert_eq!(check_static(&subnet, ip("fd00:2::ffff"), &taken), Ok(()));
        assert_eq!(
            check_static(&subnet, ip("fd00:2::"), &taken),
            Err(IpamError::AddressInUse)
        );
        assert_eq!(
            check_static(&subnet, ip("fd00:2:0:0:ffff:ffff:ffff:ffff"), &taken),
            Ok(())
        );
        // /31: both addresses are host addresses.
        assert_eq!(
            check_static(&net("10.0.0.0/31"), ip("10.0.0.0"), &HashSet::new()),
            Ok(())
        );
    }
}
