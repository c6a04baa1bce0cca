//! Starts a whole origin from an `OriginConfig`: the HTTP server, the RTMP and SRT
//! listeners, the demo loop and the housekeeping tick, and reports the addresses
//! actually bound (so tests can ask for port 0).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::OriginConfig;
use crate::http::{self, AppState};
use crate::ingest;
use crate::live::Streams;
use crate::vod::Library;
use integrity::{KeyError, Signer};

/// Why the origin could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen for HTTP on {addr}: {source} (is another server using the port? pick one with --http)")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen for RTMP on {addr}: {source} (pick another port with --rtmp)")]
    Rtmp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen for SRT on {addr}: {source} (pick another port with --srt)")]
    Srt {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("media folder {path}: {source}")]
    Media {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    AdminToken(#[from] http::admin::WeakToken),
    #[error(transparent)]
    Demo(#[from] ingest::demo::DemoError),
    #[error(transparent)]
    Whep(#[from] crate::whep::WhepStartError),
    #[error(transparent)]
    S3(#[from] crate::record::s3::S3Error),
}

/// A running origin. Dropping it stops every task it started.
#[derive(Debug)]
pub struct Origin {
    pub http_addr: SocketAddr,
    pub rtmp_addr: Option<SocketAddr>,
    /// Bound SRT (UDP) address, when SRT ingest is on.
    pub srt_addr: Option<SocketAddr>,
    pub state: AppState,
    /// WHEP playback (WebRTC), when on; its routes are served on the HTTP port.
    pub whep: Option<Arc<crate::whep::Whep>>,
    /// WHIP ingest (WebRTC publish), when on; its routes are served on the HTTP port.
    pub whip: Option<Arc<crate::whip::Whip>>,
    tasks: Vec<JoinHandle<()>>,
    stop_ingest: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(stop) = self.stop_ingest.take() {
            let _ = stop.send(());
        }
    }
}

impl Origin {
    /// Binds the listeners and starts serving.
    pub async fn start(config: OriginConfig) -> Result<Self, StartError> {
        // Install the recorder before anything counts.
        crate::metrics::handle();
        let signer = Arc::new(Signer::load_or_create(&config.data_dir)?);
        let streams = Arc::new(Streams::new(
            config.packaging.clone(),
            config.limits.clone(),
            config.publish_keys.clone(),
            config.require_keys,
        ));
        let vod = match &config.media_dir {
            Some(dir) => Some(Arc::new(
                Library::new(
                    dir,
                    config.packaging.segment_target,
                    config.limits.max_vod_moov_bytes,
                )
                .map_err(|source| StartError::Media {
                    path: dir.display().to_string(),
                    source,
                })?,
            )),
            None => None,
        };
        let hooks = crate::hooks::Hooks::new(config.hooks.clone());
        let s3 = match &config.record.s3 {
            Some(c) => Some(Arc::new(crate::record::s3::S3::connect(c.clone())?)),
            None => None,
        };
        let recordings = Arc::new(crate::record::Recordings::open(
            config.record.clone(),
            &config.data_dir,
            hooks.clone(),
            s3.clone(),
        ));
        let state = AppState {
            streams: streams.clone(),
            vod,
            signer,
            hooks: hooks.clone(),
            recordings: recordings.clone(),
        };
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(recordings.clone().run(streams.clone())));
        if let Some(s3) = s3 {
            tasks.push(tokio::spawn(crate::record::s3::run(recordings.clone(), s3)));
        }

        let listener = service::bind(config.http).map_err(|source| StartError::Http {
            addr: config.http,
            source,
        })?;
        let http_addr = listener.local_addr().map_err(|source| StartError::Http {
            addr: config.http,
            source,
        })?;
        let admin = config
            .admin_token
            .as_deref()
            .map(http::admin::AdminToken::new)
            .transpose()?;
        let app = http::router(state.clone(), config.public_metrics, admin);
        let app = match config.extra_routes.clone() {
            Some(extra) => app.merge(extra),
            None => app,
        };
        let whep = crate::whep::Whep::start(streams.clone(), config.whep.clone()).await?;
        let app = match &whep {
            Some(w) => app.merge(crate::whep::http::routes(w.clone())),
            None => app,
        };
        let whip = crate::whip::Whip::start(
            streams.clone(),
            hooks.clone(),
            config.whip.clone(),
            whep.as_ref().map(|w| w.shared_udp()),
            &config.whep,
        )
        .await?;
        let app = match &whip {
            Some(w) => app.merge(crate::whip::http::routes(w.clone())),
            None => app,
        };
        let limits = config.limits.clone();
        tasks.push(tokio::spawn(async move {
            http::serve(listener, app, &limits).await;
        }));
        tracing::info!(addr = %http_addr, "HTTP listening");

        // Ingest (RTMP connections, packaging, the demo loop) runs on its own
        // single-threaded event loop, like an nginx worker: frames never hop between
        // threads, which keeps CPU per stream low; HTTP stays on the main runtime.
        let rtmp_listener = match config.rtmp {
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|source| StartError::Rtmp { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| StartError::Rtmp { addr, source })?;
                tracing::info!(addr = %bound, "RTMP listening: publish to rtmp://{bound}/live/STREAM");
                Some((listener, bound))
            }
            None => None,
        };
        let rtmp_addr = rtmp_listener.as_ref().map(|(_, a)| *a);
        let srt_socket = match config.srt {
            Some(addr) => {
                let socket = std::net::UdpSocket::bind(addr)
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                    .map_err(|source| StartError::Srt { addr, source })?;
                let bound = socket
                    .local_addr()
                    .map_err(|source| StartError::Srt { addr, source })?;
                tracing::info!(addr = %bound, "SRT listening: publish to srt://{bound}?streamid=live/STREAM");
                Some((socket, bound))
            }
            None => None,
        };
        let srt_addr = srt_socket.as_ref().map(|(_, a)| *a);
        let srt = srt_socket.map(|(socket, _)| {
            let s = &config.srt_settings;
            (
                socket,
                ingest::srt::Settings {
                    passphrase: s.passphrase.clone(),
                    pbkeylen: s.pbkeylen,
                    latency: s.latency,
                    max_connections: config.limits.max_srt_connections,
                    idle_timeout: config.limits.srt_idle_timeout,
                },
            )
        });
        let clip = if config.demo {
            Some(ingest::demo::Clip::parse(ingest::demo::DEMO_CLIP)?)
        } else {
            None
        };
        let (stop_ingest, stopped) = tokio::sync::oneshot::channel::<()>();
        let s = streams.clone();
        let ingest_hooks = hooks.clone();
        let settings = ingest::rtmp::Settings {
            max_connections: config.limits.max_rtmp_connections,
            max_connections_per_ip: config.limits.max_rtmp_connections_per_ip,
            read_batch: config.packaging.ingest_read_batch,
            publish_deadline: config.limits.rtmp_publish_deadline,
            idle_timeout: config.limits.rtmp_idle_timeout,
        };
        std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || {
                ingest_loop(
                    s,
                    rtmp_listener.map(|(l, _)| l),
                    settings,
                    srt,
                    clip,
                    ingest_hooks,
                    stopped,
                )
            })
            .map_err(|source| StartError::Rtmp {
                addr: config.rtmp.unwrap_or(config.http),
                source,
            })?;

        let s = streams.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                s.reap();
                hooks.reap_sessions();
            }
        }));

        Ok(Self {
            http_addr,
            rtmp_addr,
            srt_addr,
            state,
            whep,
            whip,
            tasks,
            stop_ingest: Some(stop_ingest),
        })
    }
}

/// The ingest thread: RTMP, SRT and the demo loop on a current-thread runtime, until
/// `stop`.
fn ingest_loop(
    streams: Arc<Streams>,
    listener: Option<std::net::TcpListener>,
    settings: ingest::rtmp::Settings,
    srt: Option<(std::net::UdpSocket, ingest::srt::Settings)>,
    clip: Option<ingest::demo::Clip>,
    hooks: crate::hooks::Hooks,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the ingest event loop");
            return;
        }
    };
    runtime.block_on(async move {
        if let Some(clip) = clip {
            let s = streams.clone();
            tokio::spawn(async move {
                if let Err(e) = ingest::demo::run(s, "demo", clip).await {
                    tracing::error!(error = %e, "demo channel stopped");
                }
            });
        }
        if let Some((socket, srt_settings)) = srt {
            match tokio::net::UdpSocket::from_std(socket) {
                Ok(socket) => {
                    tokio::spawn(ingest::srt::serve(
                        socket,
                        streams.clone(),
                        srt_settings,
                        hooks.clone(),
                    ));
                }
                Err(e) => tracing::error!(error = %e, "cannot use the SRT socket"),
            }
        }
        if let Some(listener) = listener {
            match TcpListener::from_std(listener) {
                Ok(l) => {
                    tokio::spawn(ingest::rtmp::serve(l, streams, settings, hooks));
                }
                Err(e) => tracing::error!(error = %e, "cannot use the RTMP listener"),
            }
        }
        let _ = stop.await;
    });
}
