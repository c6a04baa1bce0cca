//! Live load of this process for heartbeats: CPU share from `/proc/self/stat`,
//! established connections on the node's HTTP port from `/proc/net/tcp{,6}`, and
//! egress bit/s from a byte counter the caller supplies. Linux only; elsewhere the
//! figures read as zero.
//!
//! The parsers are pure functions over the file text (tested and hostile-input safe);
//! [`LoadSampler`] reads the files and keeps the previous sample for rates.

use std::time::Instant;

use parking_lot::Mutex;

use super::Load;

/// Kernel clock ticks per second for `/proc/self/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime (ticks) from `/proc/self/stat` text.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields after the
    // last ')' are fixed; utime and stime are fields 14 and 15 (11 and 12 after it).
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime.saturating_add(stime))
}

/// Established TCP connections whose local port is `port`, from `/proc/net/tcp` (or
/// `tcp6`) text.
pub fn established_on(table: &str, port: u16) -> u64 {
    let want = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let mut f = l.split_whitespace();
            let local = f.nth(1).unwrap_or("");
            let state = f.nth(1).unwrap_or("");
            state == "01" && local.rsplit(':').next() == Some(want.as_str())
        })
        .count() as u64
}

struct Prev {
    at: Instant,
    ticks: u64,
    egress: u64,
}

/// Samples this process's load; each call measures rates since the previous one.
pub struct LoadSampler {
    port: u16,
    egress_bytes: Box<dyn Fn() -> u64 + Send + Sync>,
    prev: Mutex<Option<Prev>>,
    cores: f64,
}

impl std::fmt::Debug for LoadSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadSampler")
            .field("port", &self.port)
            .finish()
    }
}

impl LoadSampler {
    /// `port`: the node's HTTP port; `egress_bytes`: a running total of bytes sent.
    pub fn new(port: u16, egress_bytes: Box<dyn Fn() -> u64 + Send + Sync>) -> Self {
        LoadSampler {
            port,
            egress_bytes,
            prev: Mutex::new(None),
            cores: std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
        }
    }

    pub fn sample(&self) -> Load {
        let now = Instant::now();
        let ticks = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| cpu_ticks(&s))
            .unwrap_or(0);
        let egress = (self.egress_bytes)();
        let connections = ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|t| established_on(&t, self.port))
            .sum();
        let mut prev = self.prev.lock();
        let (cpu, egress_bps) = match prev.as_ref() {
            Some(p) => {
                let secs = now.duration_since(p.at).as_secs_f64().max(1e-3);
                (
                    (ticks.saturating_sub(p.ticks) as f64 / TICKS_PER_SEC / secs / self.cores)
                        .clamp(0.0, 1.0),
                    (egress.saturating_sub(p.egress) as f64 * 8.0 / secs) as u64,
                )
            }
            None => (0.0, 0),
        };
        *prev = Some(Prev {
            at: now,
            ticks,
            egress,
        });
        Load {
            connections,
            egress_bps,
            cpu,
        }
    }
}

/// The value of a counter (summed over label sets) in Prometheus text.
pub fn prometheus_value(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v.max(0.0) as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_odd_command_names() {
        let stat = "1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0";
        assert_eq!(cpu_ticks(stat), Some(200));
        assert_eq!(cpu_ticks("garbage"), None);
        assert_eq!(cpu_ticks("1 (x) S 1"), None);
    }

    #[test]
    fn only_established_sockets_on_the_port_count() {
        let t = "  sl  local_address rem_address   st tx_queue\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000\n\
   1: 0100007F:1F90 0100007F:D431 01 00000000\n\
   2: 0100007F:1F91 0100007F:D432 01 00000000\n\
   3: 0100007F:1F90 0200007F:D433 01 00000000\n\
   junk\n";
        assert_eq!(established_on(t, 8080), 2);
        assert_eq!(established_on("", 8080), 0);
    }

    #[test]
    fn counters_are_read_from_prometheus_text() {
        let t = "# TYPE mediamesh_edge_egress_bytes_total counter\nmediamesh_edge_egress_bytes_total 1234\nmediamesh_edge_egress_bytes_total_x 9\nx{a=\"1\"} 5\nx{a=\"2\"} 6\n";
        assert_eq!(
            prometheus_value(t, "mediamesh_edge_egress_bytes_total"),
            1234
        );
        assert_eq!(prometheus_value(t, "x"), 11);
        assert_eq!(prometheus_value(t, "missing"), 0);
    }

    #[test]
    fn the_sampler_reads_this_process() {
        let s = LoadSampler::new(1, Box::new(|| 1000));
        let first = s.sample();
        assert_eq!(first.egress_bps, 0);
        let second = s.sample();
        assert!(second.cpu >= 0.0 && second.cpu <= 1.0);
    }
}
