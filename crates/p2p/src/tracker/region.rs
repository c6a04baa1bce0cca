//! Swarm partitioning by region: the operator maps client address blocks (CIDR) to
//! region names, and the tracker keeps one swarm per (info hash, region), so viewers
//! are only introduced to peers of their own region. Addresses that match no block
//! share the unpartitioned swarm.
//!
//! Not geolocation: the map is the operator's (a MaxMind database belongs to the
//! router of the fleet).

use std::net::IpAddr;

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use super::id::Id20;

/// CIDR blocks → region names; the longest matching prefix wins.
#[derive(Debug, Clone, Default)]
pub struct RegionMap {
    blocks: Vec<(IpNet, String)>,
}

/// A `CIDR=REGION` entry that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("want CIDR=REGION (e.g. 10.1.0.0/16=eu), got {0:?}")]
pub struct BadRegion(pub String);

impl RegionMap {
    /// Parses entries like `10.1.0.0/16=eu` or `2001:db8::/32=us`.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, BadRegion> {
        let mut blocks = Vec::new();
        for e in entries {
            let (cidr, name) = e.split_once('=').ok_or_else(|| BadRegion(e.to_string()))?;
            let net: IpNet = cidr.trim().parse().map_err(|_| BadRegion(e.to_string()))?;
            let name = name.trim();
            if name.is_empty() || name.len() > 64 {
                return Err(BadRegion(e.to_string()));
            }
            blocks.push((net.trunc(), name.to_string()));
        }
        // Longest prefix first, so the first match is the most specific.
        blocks.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        Ok(RegionMap { blocks })
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The region of a client address, if any block holds it.
    pub fn region_of(&self, ip: IpAddr) -> Option<&str> {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.blocks
            .iter()
            .find(|(n, _)| n.contains(&ip))
            .map(|(_, r)| r.as_str())
    }
}

/// The internal swarm key of an info hash within a region. Clients never see it:
/// replies carry the info hash they announced.
pub fn regional_key(info_hash: Id20, region: &str) -> Id20 {
    let mut h = Sha256::new();
    h.update(b"mediamesh-region\0");
    h.update(region.as_bytes());
    h.update([0]);
    h.update(info_hash.0);
    let d = h.finalize();
    let mut out = [0u8; 20];
    out.copy_from_slice(&d[..20]);
    Id20(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let m = RegionMap::parse(["10.0.0.0/8=world", "10.1.0.0/16=eu", "2001:db8::/32=us"])
            .expect("parse");
        assert_eq!(m.region_of("10.1.2.3".parse().expect("ip")), Some("eu"));
        assert_eq!(m.region_of("10.2.0.1".parse().expect("ip")), Some("world"));
        assert_eq!(
            m.region_of("::ffff:10.1.0.9".parse().expect("ip")),
            Some("eu")
        );
        assert_eq!(m.region_of("2001:db8::1".parse().expect("ip")), Some("us"));
        assert_eq!(m.region_of("192.168.0.1".parse().expect("ip")), None);
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in ["10.0.0.0/8", "10.0.0.0/33=x", "nonsense=eu", "10.0.0.0/8="] {
            assert!(RegionMap::parse([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn regions_get_distinct_keys() {
        let ih = Id20([7; 20]);
        assert_ne!(regional_key(ih, "eu"), regional_key(ih, "us"));
        assert_ne!(regional_key(ih, "eu"), ih);
    }
}
