//! NAT traversal of native peers against a real STUN/TURN server (coturn's
//! `turnserver`), not a mock. The scenario re-runs itself inside a private network and
//! mount namespace (`unshare --net --mount`, as root; `/run/netns` is a tmpfs there, so
//! the `ip netns` names below exist only inside it) and builds:
//!
//! ```text
//!   "public" (the test's namespace), bridge br0 198.51.100.1/24:
//!       mediamesh serve --demo (origin + tracker) on :8080, turnserver on :3478
//!        │                                  │
//!   nat1: 198.51.100.11 ── MASQUERADE    nat2: 198.51.100.12 ── MASQUERADE
//!        │ 192.168.1.1                      │ 192.168.2.1
//!   lan1: 192.168.1.2                    lan2: 192.168.2.2
//!       mediamesh peer --ice-server stun:… --ice-server turn:…   (one in each LAN)
//! ```
//!
//! Each NAT is configured like a home router: MASQUERADE out of its public side and a
//! firewall that drops unsolicited (conntrack `NEW`) packets coming in there. (Without
//! that firewall, the first hole-punching packet to arrive at the other NAT creates a
//! conntrack entry to the NAT itself, and the other side's outgoing mapping then
//! clashes with it and gets another port: MASQUERADE turns symmetric.) The public
//! namespace has a default route into a namespace that forwards nothing, like the
//! rest of the internet: a TURN server must not get "network unreachable" for a
//! peer's private host candidate (coturn closes the allocation on that).
//!
//! The LANs cannot reach each other's private addresses (the NATs have no route for
//! them), so host candidates are useless across them: the peers must use what STUN and
//! TURN found. With UDP between the two NATs' public addresses dropped in both NATs'
//! FORWARD chains, only the relay is left. Proof is by outcome: each viewer's `--stats`
//! shows segment bytes received from a peer, and each peer's log says on which path
//! its data-channel datagrams leave, each time that changes (`link data path
//! link=N path="direct"|"relay" dest=…`: ICE may start on a relay pair that
//! succeeded first and move to a better one), checked against coturn's own log of
//! relayed traffic. Needs `unshare`, `ip`,
//! `iptables` and `turnserver` (`bash .ci/run` installs iproute2, iptables, coturn).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const IN_NETNS: &str = "MEDIAMESH_TEST_IN_NAT_NETNS";
const PUBLIC: &str = "198.51.100.1";
const ORIGIN: &str = "198.51.100.1:8080";
const TURN_PORT: &str = "3478";
const NAT_PUBLIC: [&str; 2] = ["198.51.100.11", "198.51.100.12"];
/// How long each viewer plays.
const VIEW_SECS: &str = "40";

/// Runs the named test of this module again inside fresh network and mount
/// namespaces, one namespace scenario at a time.
fn rerun_in_netns(test: &str) {
    let _turn = browser_turn();
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let test = format!("{module}::{test}");
    let exe = std::env::current_exe().expect("test binary path");
    // `ip netns add` bind-mounts under /run/netns: a tmpfs in our own mount namespace
    // keeps those names away from the machine's.
    let setup = "set -e; mkdir -p /run/netns; mount -t tmpfs mediamesh-nat /run/netns; \
        ip link set lo up; exec \"$0\" \"$@\"";
    let out = run(
        Command::new("unshare")
            .args(["--net", "--mount", "--", "sh", "-c", setup])
            .arg(&exe)
            .args([
                "--exact",
                &test,
                "--nocapture",
                "--test-threads=1",
                "--include-ignored",
            ])
            .env(IN_NETNS, "1"),
        Duration::from_secs(200),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "the scenario failed inside its namespaces (it needs root for `unshare --net \
         --mount`, `ip` from iproute2, iptables and coturn's turnserver):\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the scenario did not run inside the namespace:\n{stdout}"
    );
}

/// Runs a shell script (`set -e`), bounded; panics with its output if it fails.
fn sh(script: &str) {
    let out = run(
        Command::new("sh").args(["-c", &format!("set -e\n{script}")]),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "network setup failed:\n{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The public bridge, two NAT namespaces doing MASQUERADE and a LAN behind each.
fn build_network() {
    let mut script = format!(
        "ip link add br0 type bridge\n\
         ip addr add {PUBLIC}/24 dev br0\n\
         ip link set br0 up\n\
         ip netns add wan\n\
         ip link add wan0 type veth peer name wan1\n\
         ip link set wan1 netns wan\n\
         ip addr add 203.0.113.1/24 dev wan0\n\
         ip link set wan0 up\n\
         ip -n wan addr add 203.0.113.2/24 dev wan1\n\
         ip -n wan link set wan1 up\n\
         ip route add default via 203.0.113.2\n"
    );
    for (i, public) in [(1, NAT_PUBLIC[0]), (2, NAT_PUBLIC[1])] {
        script.push_str(&format!(
            "ip netns add nat{i}\n\
             ip netns add lan{i}\n\
             ip link add n{i}p type veth peer name n{i}x\n\
             ip link set n{i}x netns nat{i}\n\
             ip link set n{i}p master br0\n\
             ip link set n{i}p up\n\
             ip -n nat{i} link set lo up\n\
             ip -n nat{i} addr add {public}/24 dev n{i}x\n\
             ip -n nat{i} link set n{i}x up\n\
             ip link add l{i}n type veth peer name l{i}h\n\
             ip link set l{i}n netns nat{i}\n\
             ip link set l{i}h netns lan{i}\n\
             ip -n nat{i} addr add 192.168.{i}.1/24 dev l{i}n\n\
             ip -n nat{i} link set l{i}n up\n\
             ip -n lan{i} link set lo up\n\
             ip -n lan{i} addr add 192.168.{i}.2/24 dev l{i}h\n\
             ip -n lan{i} link set l{i}h up\n\
             ip -n lan{i} route add default via 192.168.{i}.1\n\
             ip netns exec nat{i} sysctl -qw net.ipv4.ip_forward=1\n\
             ip netns exec nat{i} iptables -t nat -A POSTROUTING -o n{i}x -j MASQUERADE\n\
             ip netns exec nat{i} iptables -A INPUT -i n{i}x -m conntrack --ctstate NEW -j DROP\n\
             ip netns exec nat{i} iptables -A FORWARD -i n{i}x -m conntrack --ctstate NEW -j DROP\n"
        ));
    }
    sh(&script);
}

/// Drops UDP between the two NATs' public addresses, in both NATs (TURN stays
/// reachable: it is on another address).
fn block_udp_between_nats() {
    let [a, b] = NAT_PUBLIC;
    sh(&format!(
        "ip netns exec nat1 iptables -I FORWARD -p udp -d {b} -j DROP\n\
         ip netns exec nat1 iptables -I FORWARD -p udp -s {b} -j DROP\n\
         ip netns exec nat2 iptables -I FORWARD -p udp -d {a} -j DROP\n\
         ip netns exec nat2 iptables -I FORWARD -p udp -s {a} -j DROP\n"
    ));
}

/// Packets the NATs' rules that block UDP between them dropped (to show the
/// direct path was tried).
fn dropped_between_nats() -> u64 {
    let mut total = 0;
    for ns in ["nat1", "nat2"] {
        let out = Command::new("ip")
            .args([
                "netns", "exec", ns, "iptables", "-L", "FORWARD", "-v", "-n", "-x",
            ])
            .output()
            .expect("iptables -L");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let between = f.iter().any(|w| NAT_PUBLIC.contains(w));
            if f.get(2) == Some(&"DROP") && f.get(3) == Some(&"17") && between {
                total += f.first().and_then(|p| p.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    total
}

/// Bytes coturn exchanged with peers on its relayed addresses (received `rb` plus
/// sent `sb` of its `peer usage:` lines, logged when an allocation ends: the
/// viewers delete theirs when they stop). Waits (bounded) until it reaches `want`.
fn coturn_peer_bytes(log: &Path, want: u64) -> (u64, String) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let bytes: u64 = text
            .lines()
            .filter(|l| l.contains("peer usage:"))
            .flat_map(|l| l.split([' ', ',']))
            .filter_map(|w| w.strip_prefix("rb=").or_else(|| w.strip_prefix("sb=")))
            .filter_map(|n| n.parse::<u64>().ok())
            .sum();
        if bytes >= want || Instant::now() >= until {
            return (bytes, text);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `mediamesh serve --demo` on the public address (origin, edge routes and tracker).
fn start_origin(dir: &Path) -> Proc {
    let log = std::fs::File::create(dir.join("serve.log")).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_mediamesh"))
        .args(["serve", "--demo", "--http", ORIGIN, "--rtmp", "127.0.0.1:0"])
        .arg("--data")
        .arg(dir.join("data"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start mediamesh serve");
    let proc = Proc {
        child,
        name: "mediamesh serve".into(),
    };
    wait_for_200(&format!("http://{ORIGIN}/healthz"), Duration::from_secs(20));
    wait_for_200(
        &format!("http://{ORIGIN}/live/demo/index.m3u8"),
        Duration::from_secs(20),
    );
    proc
}

/// coturn with one long-term user, logging to a file.
fn start_coturn(dir: &Path) -> (Proc, PathBuf) {
    let conf = dir.join("turnserver.conf");
    std::fs::write(&conf, "").expect("empty coturn config");
    let log = dir.join("turnserver.log");
    let logf = std::fs::File::create(&log).expect("log file");
    let child = Command::new("turnserver")
        .arg("-c")
        .arg(&conf)
        .args([
            &format!("--listening-ip={PUBLIC}"),
            &format!("--relay-ip={PUBLIC}"),
            &format!("--listening-port={TURN_PORT}"),
            "--min-port=49152",
            "--max-port=49400",
            "--lt-cred-mech",
            "--user=mm:natsecret",
            "--realm=mediamesh.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--simple-log",
            "--verbose",
            "--log-file=stdout",
        ])
        .arg(format!(
            "--pidfile={}",
            dir.join("turnserver.pid").display()
        ))
        .arg(format!("--userdb={}", dir.join("turndb").display()))
        .stdout(logf)
        .stderr(Stdio::null())
        .spawn()
        .expect("start turnserver (Debian package coturn)");
    let proc = Proc {
        child,
        name: "turnserver".into(),
    };
    let until = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("UDP listener opened on")
    {
        assert!(
            Instant::now() < until,
            "turnserver did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (proc, log)
}

/// One native viewer inside `lan`, with STUN and TURN servers.
fn start_viewer(dir: &Path, lan: &str) -> (Proc, PathBuf, PathBuf) {
    let stats = dir.join(format!("{lan}.json"));
    let log = dir.join(format!("{lan}.log"));
    let logf = std::fs::File::create(&log).expect("log file");
    let child = Command::new("ip")
        .args(["netns", "exec", lan])
        .arg(env!("CARGO_BIN_EXE_mediamesh"))
        .arg("peer")
        .arg(format!("http://{ORIGIN}/live/demo/index.m3u8"))
        .args(["--count", "1", "--duration", VIEW_SECS])
        .arg(format!("--ice-server=stun:{PUBLIC}:{TURN_PORT}"))
        .arg(format!(
            "--ice-server=turn:mm:natsecret@{PUBLIC}:{TURN_PORT}?transport=udp"
        ))
        .arg("--stats")
        .arg(&stats)
        .env("RUST_LOG", "info,turn_client_proto=warn")
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .expect("start mediamesh peer");
    let proc = Proc {
        child,
        name: format!("mediamesh peer in {lan}"),
    };
    (proc, stats, log)
}

/// What one viewer did: its stats and the data paths its log reports.
struct Outcome {
    stats: serde_json::Value,
    log: String,
}

impl Outcome {
    fn p2p_bytes(&self) -> u64 {
        self.stats["total"]["p2p_bytes"].as_u64().unwrap_or(0)
    }

    /// `(link, path, dest)` of every `link data path` line, in order.
    fn paths(&self) -> Vec<(String, String, String)> {
        self.log
            .lines()
            .filter(|l| l.contains("link data path"))
            .map(|l| {
                let field = |name: &str| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(name))
                        .unwrap_or("")
                        .trim_matches('"')
                        .to_string()
                };
                (field("link="), field("path="), field("dest="))
            })
            .collect()
    }

    /// The path each link ended on: `(path, dest)` of its last line.
    fn final_paths(&self) -> Vec<(String, String)> {
        let mut last: Vec<(String, (String, String))> = Vec::new();
        for (link, path, dest) in self.paths() {
            match last.iter_mut().find(|(l, _)| *l == link) {
                Some((_, p)) => *p = (path, dest),
                None => last.push((link, (path, dest))),
            }
        }
        last.into_iter().map(|(_, p)| p).collect()
    }
}

/// Starts both viewers a second apart and waits (bounded) for both to finish.
fn run_viewers(dir: &Path) -> [Outcome; 2] {
    let mut a = start_viewer(dir, "lan1");
    std::thread::sleep(Duration::from_secs(1));
    let mut b = start_viewer(dir, "lan2");
    let limit = Duration::from_secs(40 + 40);
    let done = |(proc, stats, log): &mut (Proc, PathBuf, PathBuf)| {
        let ok = proc.wait_exit(limit);
        let log = std::fs::read_to_string(&*log).unwrap_or_default();
        assert_eq!(ok, Some(true), "{} did not finish well:\n{log}", proc.name);
        let stats = std::fs::read_to_string(&*stats).expect("stats file");
        Outcome {
            stats: serde_json::from_str(&stats).expect("stats JSON"),
            log,
        }
    };
    [done(&mut a), done(&mut b)]
}

fn gathered(o: &Outcome) -> bool {
    o.log.lines().any(|l| {
        l.contains("ice candidates gathered") && l.contains("srflx=[") && l.contains("relayed=Some")
    })
}

#[test]
fn native_peers_behind_two_nats_connect_through_stun() {
    if std::env::var_os(IN_NETNS).is_none() {
        rerun_in_netns("native_peers_behind_two_nats_connect_through_stun");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    build_network();
    let (_coturn, _coturn_log) = start_coturn(dir.path());
    let _origin = start_origin(dir.path());
    let outcomes = run_viewers(dir.path());
    for (i, o) in outcomes.iter().enumerate() {
        let other_nat = NAT_PUBLIC[1 - i];
        eprintln!(
            "lan{}: total {} paths {:?}",
            i + 1,
            o.stats["total"],
            o.paths()
        );
        assert!(
            gathered(o),
            "lan{}: no srflx/relay candidates:\n{}",
            i + 1,
            o.log
        );
        assert_eq!(o.stats["total"]["errors"], 0, "{}", o.stats);
        assert!(
            o.p2p_bytes() > 0,
            "lan{}: no segment bytes from the peer behind the other NAT: {}\n{}",
            i + 1,
            o.stats,
            o.log
        );
        assert_eq!(o.stats["total"]["rejected_segments"], 0, "{}", o.stats);
        // Data ends up going straight to the other NAT's public address (its
        // server-reflexive address, learned from STUN), not through the relay.
        let finals = o.final_paths();
        assert!(
            !finals.is_empty()
                && finals
                    .iter()
                    .all(|(p, d)| p == "direct" && d.starts_with(&format!("{other_nat}:"))),
            "lan{}: the link did not end on the direct path to the other NAT ({other_nat}): \
             {finals:?}\n{}",
            i + 1,
            o.log
        );
    }
}

#[test]
fn native_peers_fall_back_to_turn_when_udp_between_nats_is_blocked() {
    if std::env::var_os(IN_NETNS).is_none() {
        rerun_in_netns("native_peers_fall_back_to_turn_when_udp_between_nats_is_blocked");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    build_network();
    block_udp_between_nats();
    let (_coturn, coturn_log) = start_coturn(dir.path());
    let _origin = start_origin(dir.path());
    let outcomes = run_viewers(dir.path());
    for (i, o) in outcomes.iter().enumerate() {
        eprintln!(
            "lan{}: total {} paths {:?}",
            i + 1,
            o.stats["total"],
            o.paths()
        );
        assert!(
            gathered(o),
            "lan{}: no srflx/relay candidates:\n{}",
            i + 1,
            o.log
        );
        assert_eq!(o.stats["total"]["errors"], 0, "{}", o.stats);
        // Each side took part in the exchange over the relay: it received segments or
        // served them (with two viewers, the one ahead of the other may fetch every
        // segment itself and only upload); that bytes went across is checked below.
        let uploaded = o.stats["total"]["uploaded_bytes"].as_u64().unwrap_or(0);
        assert!(
            o.p2p_bytes() > 0 || uploaded > 0,
            "lan{}: no segment bytes to or from the peer over the relay: {}\n{}",
            i + 1,
            o.stats,
            o.log
        );
        assert_eq!(o.stats["total"]["rejected_segments"], 0, "{}", o.stats);
        // Every link ends on a relayed path: sent through our own allocation (Send
        // indications), or sent from our socket to the other side's relayed address
        // (which its TURN client receives as Data indications). Which of the two
        // each side uses is up to ICE.
        let finals = o.final_paths();
        assert!(
            !finals.is_empty()
                && finals
                    .iter()
                    .all(|(p, d)| p == "relay" || d.starts_with(&format!("{PUBLIC}:"))),
            "lan{}: a link did not end on a relayed path: {finals:?}\n{}",
            i + 1,
            o.log
        );
        for line in o.log.lines().filter(|l| l.contains("ice hub closed")) {
            eprintln!("lan{}: {line}", i + 1);
        }
    }
    // The direct path was tried and dropped by the NATs ...
    assert!(
        dropped_between_nats() > 0,
        "the NATs dropped nothing between them"
    );
    // ... and the data went through TURN allocations, which coturn itself counted: every verified segment byte the two got from
    // each other crossed one of its relayed addresses (plus DTLS/SCTP framing).
    let p2p: u64 = outcomes.iter().map(Outcome::p2p_bytes).sum();
    assert!(p2p > 0, "no segment bytes crossed between the peers");
    let (relayed_bytes, log) = coturn_peer_bytes(&coturn_log, p2p);
    eprintln!("coturn relayed {relayed_bytes} peer bytes; the viewers got {p2p} p2p bytes");
    assert!(
        relayed_bytes >= p2p,
        "coturn relayed {relayed_bytes} bytes, less than the {p2p} segment bytes the viewers \
         exchanged:\n{log}"
    );
}
