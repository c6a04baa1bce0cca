//! Content Steering: the multivariant playlist and MPD rewrites that list one pathway
//! per edge, and the steering manifest the router serves per client.
//!
//! HLS (draft-pantos-hls-rfc8216bis, "Content Steering"): the playlist fetched through
//! the router is parsed with `media::hls`, every variant is repeated once per edge with
//! an absolute URI on that edge and `PATHWAY-ID`, and `EXT-X-CONTENT-STEERING` names the
//! steering URI and the client's first pathway. The steering URI carries the pathways
//! the client knows (`have`) and the lowest variant bandwidth (`minbw`), so the router
//! stays stateless. DASH (ETSI TS 103 998): the MPD gets `<ContentSteering>` and one
//! `<BaseURL serviceLocation=…>` per edge; the manifest answers with
//! `SERVICE-LOCATION-PRIORITY`.
//!
//! Pure functions: no I/O, no clocks.

use media::hls::{ContentSteering, MultivariantPlaylist};
use serde::Serialize;

/// One pathway: an edge's id and base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pathway {
    pub id: String,
    pub base: String,
}

/// Query-string encoding of a value (RFC 3986 unreserved characters kept).
pub fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The steering URI written into a playlist or MPD (relative to it, so it resolves
/// against the router the client asked).
pub fn steering_uri(dash: bool, key: &str, have: &[Pathway], min_bandwidth: u64) -> String {
    let ids: Vec<&str> = have.iter().map(|p| p.id.as_str()).collect();
    format!(
        "/steering/{}?stream={}&have={}&minbw={min_bandwidth}",
        if dash { "dash" } else { "hls" },
        encode(key),
        encode(&ids.join(","))
    )
}

/// Joins a playlist-relative URI to a pathway base: `{base}{dir}{uri}`; an absolute
/// URI keeps its path and query and takes the pathway's scheme and authority.
fn on_pathway(base: &str, dir: &str, uri: &str) -> String {
    if let Some((_, rest)) = uri.split_once("://") {
        let path = rest.find('/').map_or("/", |i| &rest[i..]);
        format!("{base}{path}")
    } else if uri.starts_with('/') {
        format!("{base}{uri}")
    } else {
        format!("{base}{dir}{uri}")
    }
}

/// Repeats every variant once per pathway (in the given order) and adds
/// `EXT-X-CONTENT-STEERING` with the first pathway. `dir` is the playlist's directory
/// (`/live/cam/`). Variants that already carry a `PATHWAY-ID` are taken as one set.
pub fn rewrite_multivariant(
    mv: &MultivariantPlaylist,
    dir: &str,
    pathways: &[Pathway],
    server_uri: String,
) -> MultivariantPlaylist {
    let mut out = mv.clone();
    let first_id = mv.variants.first().and_then(|v| v.pathway_id.clone());
    let base_set: Vec<_> = mv
        .variants
        .iter()
        .filter(|v| v.pathway_id == first_id)
        .collect();
    out.variants = pathways
        .iter()
        .flat_map(|p| {
            base_set.iter().map(move |v| {
                let mut v = (*v).clone();
                v.uri = on_pathway(&p.base, dir, &v.uri);
                v.pathway_id = Some(p.id.clone());
                v
            })
        })
        .collect();
    out.content_steering = Some(ContentSteering {
        server_uri,
        pathway_id: pathways.first().map(|p| p.id.clone()),
    });
    out
}

/// The lowest `BANDWIDTH` of a playlist (for the throughput rule).
pub fn min_bandwidth(mv: &MultivariantPlaylist) -> u64 {
    mv.variants.iter().map(|v| v.bandwidth).min().unwrap_or(0)
}

/// Why an MPD could not be rewritten.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MpdError {
    #[error("no <MPD> start tag found")]
    NoRoot,
    #[error("MPD is larger than {0} bytes")]
    TooLarge(usize),
}

/// Largest MPD the router rewrites.
pub const MAX_MPD_BYTES: usize = 4 * 1024 * 1024;

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Byte offset just after the `<MPD …>` start tag: skips the XML declaration,
/// processing instructions and comments, and honours quoted attribute values.
fn after_root_start(xml: &str) -> Option<usize> {
    let b = xml.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &xml[i..];
        if rest.starts_with("<?") {
            i += rest.find("?>")? + 2;
        } else if rest.starts_with("<!--") {
            i += rest.find("-->")? + 3;
        } else if rest.starts_with("<MPD") || rest.starts_with("<mpd:MPD") {
            let mut quote: Option<u8> = None;
            let mut j = i + 1;
            while j < b.len() {
                match (quote, b[j]) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, b'"') | (None, b'\'') => quote = Some(b[j]),
                    (None, b'>') => {
                        return if b[j - 1] == b'/' { None } else { Some(j + 1) };
                    }
                    _ => {}
                }
                j += 1;
            }
            return None;
        } else {
            return None;
        }
    }
    None
}

/// Inserts `<ContentSteering>` and one `<BaseURL serviceLocation>` per pathway right
/// after the MPD start tag. `dir` is the MPD's directory (`/live/cam/`).
pub fn rewrite_mpd(
    mpd: &str,
    dir: &str,
    pathways: &[Pathway],
    server_uri: &str,
) -> Result<String, MpdError> {
    if mpd.len() > MAX_MPD_BYTES {
        return Err(MpdError::TooLarge(MAX_MPD_BYTES));
    }
    let at = after_root_start(mpd).ok_or(MpdError::NoRoot)?;
    let mut add = String::new();
    if let Some(first) = pathways.first() {
        add.push_str(&format!(
            "\n  <ContentSteering defaultServiceLocation=\"{}\" queryBeforeStart=\"false\">{}</ContentSteering>",
            xml_escape(&first.id),
            xml_escape(server_uri)
        ));
    }
    for p in pathways {
        add.push_str(&format!(
            "\n  <BaseURL serviceLocation=\"{}\">{}</BaseURL>",
            xml_escape(&p.id),
            xml_escape(&format!("{}{dir}", p.base))
        ));
    }
    let mut out = String::with_capacity(mpd.len() + add.len());
    out.push_str(&mpd[..at]);
    out.push_str(&add);
    out.push_str(&mpd[at..]);
    Ok(out)
}

/// What the client said in its steering request.
#[derive(Clone, Debug, Default)]
pub struct SteeringQuery {
    pub stream: String,
    /// Pathways in the client's playlist.
    pub have: Vec<String>,
    pub min_bandwidth: u64,
    /// `_HLS_pathway` / `_DASH_pathway`: the pathway in use.
    pub current: Option<String>,
    /// `_HLS_throughput` / `_DASH_throughput`, bit/s.
    pub throughput: Option<u64>,
}

/// One `PATHWAY-CLONES` entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Clone_ {
    #[serde(rename = "BASE-ID")]
    pub base_id: String,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "URI-REPLACEMENT")]
    pub uri_replacement: UriReplacement,
}

/// `URI-REPLACEMENT` of a clone.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UriReplacement {
    #[serde(rename = "HOST")]
    pub host: String,
}

/// The steering manifest (HLS and DASH share everything but the priority key).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Manifest {
    #[serde(rename = "VERSION")]
    pub version: u32,
    #[serde(rename = "TTL")]
    pub ttl: u64,
    #[serde(rename = "RELOAD-URI")]
    pub reload_uri: String,
    #[serde(rename = "PATHWAY-PRIORITY", skip_serializing_if = "Option::is_none")]
    pub pathway_priority: Option<Vec<String>>,
    #[serde(
        rename = "SERVICE-LOCATION-PRIORITY",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_location_priority: Option<Vec<String>>,
    #[serde(rename = "PATHWAY-CLONES", skip_serializing_if = "Vec::is_empty")]
    pub clones: Vec<Clone_>,
}

/// (scheme, hostname, port) of a base URL.
fn split_base(base: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = base.split_once("://")?;
    let auth = rest.split('/').next()?;
    let (host, port) = match auth.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || auth.starts_with('[') => (h, p),
        _ => (auth, ""),
    };
    Some((scheme, host, port))
}

/// Builds the manifest for one client.
///
/// `ranked` are the healthy edges for this client and stream, best first (see
/// [`super::pick::rank`]); `same_region` tells whether an edge is in the first edge's
/// region; `known` are all pathways the router knows, healthy or not (clone bases).
/// Rules: the order is `ranked` restricted to pathways the client can use (its `have`
/// plus clones); the pathway in use stays first while it is healthy, in the best
/// region and fast enough — the cache it warmed is worth keeping — but moves behind
/// the next one when the client's throughput is below the lowest variant bandwidth.
/// An edge the client does not know becomes a `PATHWAY-CLONES` entry when a known
/// pathway differs from it only by host name (HLS `URI-REPLACEMENT` replaces the host
/// name, not the port). When no pathway the client knows is healthy, the client's own
/// list is returned unchanged (the priority list may not be empty).
pub fn manifest(
    dash: bool,
    q: &SteeringQuery,
    ranked: &[Pathway],
    known: &[Pathway],
    same_region: &dyn Fn(&str) -> bool,
    ttl: u64,
) -> Manifest {
    let mut clones = Vec::new();
    let mut usable: Vec<String> = Vec::new();
    for p in ranked {
        if q.have.contains(&p.id) {
            usable.push(p.id.clone());
            continue;
        }
        if dash {
            continue;
        }
        let Some((scheme, host, port)) = split_base(&p.base) else {
            continue;
        };
        let base = known.iter().chain(ranked).find(|b| {
            q.have.contains(&b.id)
                && split_base(&b.base)
                    .is_some_and(|(s, h, pt)| s == scheme && pt == port && h != host)
        });
        if let Some(b) = base {
            clones.push(Clone_ {
                base_id: b.id.clone(),
                id: p.id.clone(),
                uri_replacement: UriReplacement {
                    host: host.to_string(),
                },
            });
            usable.push(p.id.clone());
        }
    }
    if let Some(cur) = &q.current {
        if let Some(i) = usable.iter().position(|u| u == cur) {
            let slow = q
                .throughput
                .is_some_and(|t| q.min_bandwidth > 0 && t < q.min_bandwidth);
            if slow && usable.len() > 1 {
                let c = usable.remove(i);
                let to = if i == 0 { 1 } else { i };
                usable.insert(to.min(usable.len()), c);
            } else if !slow && same_region(cur) {
                let c = usable.remove(i);
                usable.insert(0, c);
            }
        }
    }
    if usable.is_empty() {
        usable = q.have.clone();
        clones.clear();
    }
    let ids: Vec<&str> = q.have.iter().map(String::as_str).collect();
    let reload_uri = format!(
        "/steering/{}?stream={}&have={}&minbw={}",
        if dash { "dash" } else { "hls" },
        encode(&q.stream),
        encode(&ids.join(",")),
        q.min_bandwidth
    );
    Manifest {
        version: 1,
        ttl,
        reload_uri,
        pathway_priority: (!dash).then(|| usable.clone()),
        service_location_priority: dash.then_some(usable),
        clones,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::hls::Variant;

    fn pw(id: &str, base: &str) -> Pathway {
        Pathway {
            id: id.into(),
            base: base.into(),
        }
    }

    fn playlist() -> MultivariantPlaylist {
        MultivariantPlaylist {
            version: 6,
            independent_segments: true,
            variants: vec![Variant {
                uri: "src/index.m3u8".into(),
                bandwidth: 1_500_000,
                codecs: Some("avc1.64001f,mp4a.40.2".into()),
                ..Variant::default()
            }],
            ..MultivariantPlaylist::default()
        }
    }

    #[test]
    fn every_variant_is_repeated_per_pathway_and_parses_back() {
        let paths = [pw("edge-a", "http://a:1"), pw("edge-b", "http://b:2")];
        let uri = steering_uri(false, "live/cam", &paths, 1_500_000);
        let out = rewrite_multivariant(&playlist(), "/live/cam/", &paths, uri.clone());
        let text = out.write();
        let back = MultivariantPlaylist::parse(&text).expect("parses");
        assert_eq!(back.variants.len(), 2);
        assert_eq!(back.variants[0].uri, "http://a:1/live/cam/src/index.m3u8");
        assert_eq!(back.variants[1].pathway_id.as_deref(), Some("edge-b"));
        let cs = back.content_steering.expect("steering tag");
        assert_eq!(cs.server_uri, uri);
        assert_eq!(cs.pathway_id.as_deref(), Some("edge-a"));
        assert!(uri.contains("have=edge-a%2Cedge-b"), "{uri}");
    }

    #[test]
    fn absolute_and_rooted_uris_move_to_the_pathway() {
        assert_eq!(
            on_pathway("http://e:9", "/live/x/", "http://o:1/live/x/a.m3u8?q=1"),
            "http://e:9/live/x/a.m3u8?q=1"
        );
        assert_eq!(
            on_pathway("http://e:9", "/live/x/", "/other/a.m3u8"),
            "http://e:9/other/a.m3u8"
        );
    }

    #[test]
    fn the_manifest_drops_dead_pathways_and_keeps_a_good_current_one() {
        let q = SteeringQuery {
            stream: "live/cam".into(),
            have: vec!["edge-a".into(), "edge-b".into(), "edge-c".into()],
            min_bandwidth: 1_000_000,
            current: Some("edge-b".into()),
            throughput: Some(5_000_000),
        };
        // edge-a died: not in ranked.
        let ranked = [pw("edge-c", "http://c:1"), pw("edge-b", "http://b:1")];
        let m = manifest(false, &q, &ranked, &[], &|id| id != "edge-x", 5);
        assert_eq!(
            m.pathway_priority,
            Some(vec!["edge-b".to_string(), "edge-c".to_string()])
        );
        let json = serde_json::to_value(&m).expect("json");
        assert_eq!(json["VERSION"], 1);
        assert_eq!(json["TTL"], 5);
        assert!(json["RELOAD-URI"]
            .as_str()
            .expect("uri")
            .starts_with("/steering/hls?"));
        assert!(json.get("SERVICE-LOCATION-PRIORITY").is_none());
        // Too slow on edge-b: it moves behind the next one.
        let slow = SteeringQuery {
            throughput: Some(10),
            ..q.clone()
        };
        let m = manifest(false, &slow, &ranked, &[], &|_| true, 5);
        assert_eq!(
            m.pathway_priority,
            Some(vec!["edge-c".to_string(), "edge-b".to_string()])
        );
        // DASH names the list differently.
        let m = manifest(true, &q, &ranked, &[], &|_| true, 5);
        assert!(m.pathway_priority.is_none());
        assert_eq!(m.service_location_priority.map(|v| v.len()), Some(2));
    }

    #[test]
    fn new_edges_become_clones_when_only_the_host_differs() {
        let q = SteeringQuery {
            stream: "live/cam".into(),
            have: vec!["edge-a".into()],
            ..SteeringQuery::default()
        };
        let ranked = [
            pw("edge-n", "http://n.example:8081"),
            pw("edge-a", "http://a.example:8081"),
            pw("edge-p", "http://p.example:9999"),
        ];
        let m = manifest(false, &q, &ranked, &[], &|_| true, 5);
        assert_eq!(m.clones.len(), 1);
        assert_eq!(m.clones[0].base_id, "edge-a");
        assert_eq!(m.clones[0].uri_replacement.host, "n.example");
        assert_eq!(
            m.pathway_priority,
            Some(vec!["edge-n".to_string(), "edge-a".to_string()])
        );
        // Nothing usable: the client's own list comes back.
        let m = manifest(
            false,
            &q,
            &[pw("edge-p", "http://p.example:9999")],
            &[],
            &|_| true,
            5,
        );
        assert_eq!(m.pathway_priority, Some(vec!["edge-a".to_string()]));
    }

    #[test]
    fn mpd_gets_steering_and_base_urls_after_the_root_tag() {
        let mpd = "<?xml version=\"1.0\"?>\n<!-- <MPD> in a comment -->\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" a=\"x>y\" type=\"dynamic\">\n<Period/></MPD>";
        let paths = [pw("edge-a", "http://a:1"), pw("edge-b", "http://b:2")];
        let out = rewrite_mpd(
            mpd,
            "/live/cam/",
            &paths,
            "/steering/dash?stream=live/cam&x=1",
        )
        .expect("rewrite");
        let root_end = out.find("type=\"dynamic\">").expect("root") + "type=\"dynamic\">".len();
        let tail = &out[root_end..];
        assert!(
            tail.trim_start()
                .starts_with("<ContentSteering defaultServiceLocation=\"edge-a\""),
            "{out}"
        );
        assert!(tail.contains("&amp;x=1</ContentSteering>"));
        assert!(tail.contains("<BaseURL serviceLocation=\"edge-b\">http://b:2/live/cam/</BaseURL>"));
        assert_eq!(
            rewrite_mpd("<html/>", "/", &paths, "/s"),
            Err(MpdError::NoRoot)
        );
        assert_eq!(
            rewrite_mpd("<MPD/>", "/", &paths, "/s"),
            Err(MpdError::NoRoot)
        );
        assert_eq!(
            rewrite_mpd("<MPD a=\"unterminated", "/", &paths, "/s"),
            Err(MpdError::NoRoot)
        );
    }
}
