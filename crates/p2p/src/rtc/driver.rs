//! The thin async shell around one str0m `Rtc`: moves datagrams between its UDP
//! sockets and the stack, drives its timers, and turns data-channel events into
//! [`LinkEvent`]s. One task per link; ends when the link closes.
//!
//! Not the API (see `link`); it holds at most one outgoing message that str0m
//! has not accepted yet, which is the back-pressure towards `PeerLink::send`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use str0m::channel::ChannelId;
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::datagram::Datagram;

/// What a link reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The data channel is open: sends go through now.
    Open,
    /// One binary (or text) message from the peer.
    Message(Bytes),
    /// The link is gone (reason for logs); no more events follow.
    Closed(String),
}

/// Largest datagram we read; WebRTC keeps them under the path MTU.
const DATAGRAM_MAX: usize = super::stun::MAX_DATAGRAM;
/// Let str0m's SCTP queue drain below this before we hear about it.
const LOW_WATER: usize = 64 * 1024;
/// How long a closing link keeps running to finish the channel close handshake.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Where a link's datagrams go: its own sockets (host candidates only), or the
/// viewer's shared [`IceHub`](super::IceHub) socket (host, srflx and relayed).
pub(super) enum Net {
    Own {
        socks: Vec<Arc<UdpSocket>>,
        readers: Vec<JoinHandle<()>>,
    },
    Hub(super::hub::HubLink),
}

impl Net {
    /// Own sockets, with one reader task each feeding the returned receiver.
    pub fn own(socks: Vec<Arc<UdpSocket>>) -> (Net, mpsc::Receiver<Datagram>) {
        let (tx, rx) = mpsc::channel::<Datagram>(256);
        let readers = spawn_readers(&socks, tx);
        (Net::Own { socks, readers }, rx)
    }

    async fn send(&self, source: SocketAddr, dest: SocketAddr, data: &[u8]) {
        match self {
            Net::Own { socks, .. } => send_datagram(socks, source, dest, data).await,
            Net::Hub(h) => h.hub.send(h.id, source, dest, data),
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Net::Own { readers, .. } = self {
            for r in readers {
                r.abort();
            }
        }
    }
}

fn spawn_readers(socks: &[Arc<UdpSocket>], tx: mpsc::Sender<Datagram>) -> Vec<JoinHandle<()>> {
    socks
        .iter()
        .map(|s| {
            let s = s.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(local) = s.local_addr() else { return };
                let mut buf = vec![0u8; DATAGRAM_MAX];
                loop {
                    match s.recv_from(&mut buf).await {
                        Ok((n, source)) => {
                            let d = Datagram {
                                local,
                                source,
                                data: buf[..n].to_vec(),
                            };
                            if tx.send(d).await.is_err() {
                                return;
                            }
                        }
                        // ICMP port unreachable and friends surface here on Linux.
                        Err(e) => tracing::trace!(error = %e, "udp recv"),
                    }
                }
            })
        })
        .collect()
}

/// Runs the link until it closes; `_guard` is held so owners can count live links.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    mut rtc: Rtc,
    socks: Net,
    mut dg_rx: mpsc::Receiver<Datagram>,
    mut out_rx: mpsc::Receiver<Bytes>,
    ev_tx: mpsc::Sender<LinkEvent>,
    deadline: tokio::time::Instant,
    _guard: Option<Arc<()>>,
) {
    let mut chan = None;
    let reason = drive(
        &mut rtc,
        &socks,
        &mut out_rx,
        &mut dg_rx,
        &ev_tx,
        deadline,
        &mut chan,
    )
    .await;
    // Close the channel properly (SCTP stream reset, RFC 8831) and keep the link
    // running for a short, bounded while until the reset handshake finishes, so a
    // browser remote sees its RTCDataChannel close. A str0m 0.24 remote does not
    // report the remote reset as ChannelClose: it notices through ICE (~20 s).
    if let Some(id) = chan {
        rtc.direct_api().close_data_channel(id);
        let until = tokio::time::Instant::now() + LINGER;
        let _ = tokio::time::timeout_at(until, linger(&mut rtc, &socks, &mut dg_rx, id)).await;
    }
    rtc.disconnect();
    while let Ok(Output::Transmit(t)) = rtc.poll_output() {
        socks.send(t.source, t.destination, &t.contents).await;
    }
    drop(socks);
    tracing::debug!(%reason, "peer link closed");
    let _ = ev_tx.send(LinkEvent::Closed(reason)).await;
}

/// Runs the stack until our channel's close completes (caller bounds the time).
async fn linger(rtc: &mut Rtc, socks: &Net, dg_rx: &mut mpsc::Receiver<Datagram>, id: ChannelId) {
    loop {
        let wake = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => socks.send(t.source, t.destination, &t.contents).await,
                Ok(Output::Event(Event::ChannelClose(c))) if c == id => return,
                Ok(Output::Event(_)) => {}
                Err(_) => return,
            }
        };
        tokio::select! {
            d = dg_rx.recv() => {
                let Some(d) = d else { return };
                let Ok(contents) = d.data.as_slice().try_into() else { continue };
                let input = Input::Receive(Instant::now(), Receive {
                    proto: Protocol::Udp,
                    source: d.source,
                    destination: d.local,
                    contents,
                });
                if rtc.accepts(&input) && rtc.handle_input(input).is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                if rtc.handle_input(Input::Timeout(Instant::now())).is_err() {
                    return;
                }
            }
        }
    }
}

async fn send_datagram(
    socks: &[Arc<UdpSocket>],
    source: SocketAddr,
    dest: SocketAddr,
    data: &[u8],
) {
    let sock = socks
        .iter()
        .find(|s| s.local_addr().ok() == Some(source))
        .or_else(|| socks.first());
    if let Some(s) = sock {
        if let Err(e) = s.send_to(data, dest).await {
            tracing::trace!(error = %e, %dest, "udp send");
        }
    }
}

async fn drive(
    rtc: &mut Rtc,
    socks: &Net,
    out_rx: &mut mpsc::Receiver<Bytes>,
    dg_rx: &mut mpsc::Receiver<Datagram>,
    ev_tx: &mpsc::Sender<LinkEvent>,
    deadline: tokio::time::Instant,
    chan: &mut Option<ChannelId>,
) -> String {
    let mut pending: Option<Bytes> = None;
    let mut app_done = false;
    loop {
        // 1. Everything str0m wants to do now.
        let wake = loop {
            let out = match rtc.poll_output() {
                Ok(o) => o,
                Err(e) => return format!("webrtc error: {e}"),
            };
            match out {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => socks.send(t.source, t.destination, &t.contents).await,
                Output::Event(ev) => match ev {
                    Event::ChannelOpen(id, _label) if chan.is_none() => {
                        *chan = Some(id);
                        if let Some(mut c) = rtc.channel(id) {
                            c.set_buffered_amount_low_threshold(LOW_WATER);
                        }
                        if ev_tx.send(LinkEvent::Open).await.is_err() {
                            return "owner dropped the link".into();
                        }
                    }
                    Event::ChannelData(d) if Some(d.id) == *chan => {
                        let msg = LinkEvent::Message(Bytes::from(d.data));
                        if ev_tx.send(msg).await.is_err() {
                            return "owner dropped the link".into();
                        }
                    }
                    Event::ChannelClose(id) if Some(id) == *chan => {
                        return "remote closed the data channel".into()
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return "ice disconnected".into()
                    }
                    _ => {}
                },
            }
        };
        if !rtc.is_alive() {
            return "connection closed".into();
        }
        // 2. Hand str0m the held message if its buffers have room.
        if let (Some(id), Some(msg)) = (*chan, pending.as_ref()) {
            match rtc.channel(id).map(|mut c| c.write(true, msg)) {
                Some(Ok(true)) => {
                    pending = None;
                    continue; // transmit it now
                }
                Some(Ok(false)) => {}
                Some(Err(e)) => return format!("data channel write: {e}"),
                None => return "data channel gone".into(),
            }
        }
        if app_done && pending.is_none() {
            return "closed by owner".into();
        }
        let now = tokio::time::Instant::now();
        if chan.is_none() && now >= deadline {
            return "connect timeout".into();
        }
        let wake_at = tokio::time::Instant::from_std(wake);
        let timer = if chan.is_none() {
            wake_at.min(deadline)
        } else {
            wake_at
        };
        // 3. Wait for the network, the owner or the clock.
        tokio::select! {
            d = dg_rx.recv() => {
                let Some(d) = d else { return "sockets closed".into() };
                let Ok(contents) = d.data.as_slice().try_into() else { continue };
                let input = Input::Receive(Instant::now(), Receive {
                    proto: Protocol::Udp,
                    source: d.source,
                    destination: d.local,
                    contents,
                });
                if rtc.accepts(&input) {
                    if let Err(e) = rtc.handle_input(input) {
                        return format!("webrtc error: {e}");
                    }
                }
            }
            m = out_rx.recv(), if chan.is_some() && pending.is_none() && !app_done => {
                match m {
                    Some(b) => pending = Some(b),
                    None => app_done = true,
                }
            }
            _ = ev_tx.closed(), if chan.is_none() => return "owner dropped the link".into(),
            _ = tokio::time::sleep_until(timer) => {
                if let Err(e) = rtc.handle_input(Input::Timeout(Instant::now())) {
                    return format!("webrtc error: {e}");
                }
            }
        }
    }
}
