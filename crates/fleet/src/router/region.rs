//! Client address → region: a CIDR map (`--region-map 10.0.0.0/8=eu`, longest prefix
//! wins) checked first, then a MaxMind-format database (`--geoip FILE.mmdb`).
//!
//! From the database the region is, in this order: a top-level `region` string (for
//! operator-made databases), the country ISO code, the continent code — so
//! `--region` names on nodes match whichever the database holds. Not a GeoIP updater.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

/// Why a region source could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    #[error("--region-map wants CIDR=REGION (e.g. 10.0.0.0/8=eu), got {0:?}")]
    BadEntry(String),
    #[error("cannot open GeoIP database {path}: {source}")]
    GeoIp {
        path: String,
        source: maxminddb::MaxMindDbError,
    },
}

/// The fields of a MaxMind record the router reads.
#[derive(serde::Deserialize, Debug, Default)]
struct GeoRecord<'a> {
    #[serde(borrow, default)]
    region: Option<&'a str>,
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    continent: Option<ContinentCode<'a>>,
}

#[derive(serde::Deserialize, Debug, Default)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(serde::Deserialize, Debug, Default)]
struct ContinentCode<'a> {
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

/// Finds the region of a client address.
#[derive(Default)]
pub struct Locator {
    map: Vec<(IpNet, String)>,
    geoip: Option<maxminddb::Reader<Vec<u8>>>,
}

impl std::fmt::Debug for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locator")
            .field("map", &self.map)
            .field("geoip", &self.geoip.is_some())
            .finish()
    }
}

impl Locator {
    /// From `CIDR=REGION` entries.
    pub fn from_map<S: AsRef<str>>(entries: &[S]) -> Result<Self, RegionError> {
        let mut map = Vec::with_capacity(entries.len());
        for e in entries {
            let e = e.as_ref();
            let (cidr, region) = e
                .split_once('=')
                .ok_or_else(|| RegionError::BadEntry(e.to_string()))?;
            let net: IpNet = cidr
                .trim()
                .parse()
                .or_else(|_| cidr.trim().parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| RegionError::BadEntry(e.to_string()))?;
            let region = region.trim();
            if region.is_empty() {
                return Err(RegionError::BadEntry(e.to_string()));
            }
            map.push((net.trunc(), region.to_string()));
        }
        // Longest prefix first, so the first match is the most specific.
        map.sort_by_key(|e| std::cmp::Reverse(e.0.prefix_len()));
        Ok(Locator { map, geoip: None })
    }

    /// Adds a MaxMind-format database, consulted after the map.
    pub fn with_geoip(mut self, path: &Path) -> Result<Self, RegionError> {
        let reader =
            maxminddb::Reader::open_readfile(path).map_err(|source| RegionError::GeoIp {
                path: path.display().to_string(),
                source,
            })?;
        self.geoip = Some(reader);
        Ok(self)
    }

    /// The region of `ip`, if the map or the database knows it.
    pub fn region_of(&self, ip: IpAddr) -> Option<String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if let Some((_, r)) = self.map.iter().find(|(net, _)| net.contains(&ip)) {
            return Some(r.clone());
        }
        let reader = self.geoip.as_ref()?;
        let rec: GeoRecord = reader.lookup(ip).ok().flatten()?;
        rec.region
            .or(rec.country.and_then(|c| c.iso_code))
            .or(rec.continent.and_then(|c| c.code))
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let l = Locator::from_map(&["127.0.0.0/8=us", "127.0.0.2/32=eu", "::1=lo"]).expect("map");
        assert_eq!(
            l.region_of("127.0.0.1".parse().expect("ip")).as_deref(),
            Some("us")
        );
        assert_eq!(
            l.region_of("127.0.0.2".parse().expect("ip")).as_deref(),
            Some("eu")
        );
        assert_eq!(
            l.region_of("::ffff:127.0.0.2".parse().expect("ip"))
                .as_deref(),
            Some("eu")
        );
        assert_eq!(
            l.region_of("::1".parse().expect("ip")).as_deref(),
            Some("lo")
        );
        assert_eq!(l.region_of("10.0.0.1".parse().expect("ip")), None);
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["10.0.0.0/8", "x=eu", "10.0.0.0/33=eu", "10.0.0.0/8="] {
            let e = Locator::from_map(&[bad]).expect_err(bad);
            assert!(e.to_string().contains("CIDR=REGION"), "{e}");
        }
    }

    /// MaxMind DB encoding of the few types the fixture needs.
    fn mm_str(out: &mut Vec<u8>, s: &str) {
        out.push((2 << 5) | s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    fn mm_map(out: &mut Vec<u8>, n: u8) {
        out.push((7 << 5) | n);
    }
    fn mm_uint(out: &mut Vec<u8>, kind: u8, v: u64) {
        let bytes: Vec<u8> = v
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        if kind <= 7 {
            out.push((kind << 5) | bytes.len() as u8);
        } else {
            out.push(bytes.len() as u8);
            out.push(kind - 7);
        }
        out.extend_from_slice(&bytes);
    }

    /// Writes a tiny IPv4 MaxMind database (24-bit records) mapping prefixes to data.
    fn write_mmdb(path: &Path, entries: &[([u8; 4], usize, Vec<u8>)]) {
        const EMPTY: u64 = u64::MAX;
        let data_flag = 1u64 << 40;
        let mut nodes: Vec<[u64; 2]> = vec![[EMPTY, EMPTY]];
        let mut data = Vec::new();
        for (ip, len, record) in entries {
            let offset = data.len() as u64;
            data.extend_from_slice(record);
            let mut node = 0usize;
            for depth in 0..*len {
                let bit = ((u32::from_be_bytes(*ip) >> (31 - depth)) & 1) as usize;
                if depth + 1 == *len {
                    nodes[node][bit] = data_flag | offset;
                } else {
                    if nodes[node][bit] == EMPTY {
                        nodes.push([EMPTY, EMPTY]);
                        nodes[node][bit] = (nodes.len() - 1) as u64;
                    }
                    node = nodes[node][bit] as usize;
                }
            }
        }
        let count = nodes.len() as u64;
        let mut out = Vec::new();
        for n in &nodes {
            for r in n {
                let v = match *r {
                    EMPTY => count,
                    x if x & data_flag != 0 => count + 16 + (x & !data_flag),
                    x => x,
                };
                out.extend_from_slice(&v.to_be_bytes()[5..]);
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        mm_map(&mut out, 9);
        mm_str(&mut out, "binary_format_major_version");
        mm_uint(&mut out, 5, 2);
        mm_str(&mut out, "binary_format_minor_version");
        mm_uint(&mut out, 5, 0);
        mm_str(&mut out, "build_epoch");
        mm_uint(&mut out, 9, 1_700_000_000);
        mm_str(&mut out, "database_type");
        mm_str(&mut out, "mediamesh-test");
        mm_str(&mut out, "description");
        mm_map(&mut out, 0);
        mm_str(&mut out, "ip_version");
        mm_uint(&mut out, 5, 4);
        mm_str(&mut out, "languages");
        out.extend_from_slice(&[0, 4]); // empty array (extended type 11)
        mm_str(&mut out, "node_count");
        mm_uint(&mut out, 6, count);
        mm_str(&mut out, "record_size");
        mm_uint(&mut out, 5, 24);
        std::fs::write(path, out).expect("write mmdb");
    }

    #[test]
    fn a_maxmind_database_gives_region_country_or_continent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.mmdb");
        let mut region = Vec::new();
        mm_map(&mut region, 1);
        mm_str(&mut region, "region");
        mm_str(&mut region, "eu-west");
        let mut country = Vec::new();
        mm_map(&mut country, 1);
        mm_str(&mut country, "country");
        mm_map(&mut country, 1);
        mm_str(&mut country, "iso_code");
        mm_str(&mut country, "DE");
        let mut continent = Vec::new();
        mm_map(&mut continent, 1);
        mm_str(&mut continent, "continent");
        mm_map(&mut continent, 1);
        mm_str(&mut continent, "code");
        mm_str(&mut continent, "NA");
        write_mmdb(
            &path,
            &[
                ([198, 51, 100, 0], 24, region),
                ([10, 0, 0, 0], 8, country),
                ([192, 0, 2, 0], 24, continent),
            ],
        );
        let l = Locator::from_map(&["10.9.0.0/16=lab"])
            .expect("map")
            .with_geoip(&path)
            .expect("database opens");
        let at = |ip: &str| l.region_of(ip.parse().expect("ip"));
        assert_eq!(at("198.51.100.7").as_deref(), Some("eu-west"));
        assert_eq!(at("10.1.2.3").as_deref(), Some("DE"));
        assert_eq!(at("10.9.1.1").as_deref(), Some("lab"), "the map wins");
        assert_eq!(at("192.0.2.200").as_deref(), Some("NA"));
        assert_eq!(at("203.0.113.1"), None);
    }

    #[test]
    fn a_missing_database_is_an_error() {
        let e = Locator::default()
            .with_geoip(Path::new("/nonexistent.mmdb"))
            .expect_err("missing");
        assert!(e.to_string().contains("/nonexistent.mmdb"));
    }
}
