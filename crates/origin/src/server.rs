//! Starts a whole origin from an `OriginConfig`: the HTTP server, the RTMP listener, the
//! demo loop and the housekeeping tick, and reports the addresses actually bound (so
//! tests can ask for port 0).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::OriginConfig;
use crate::http::{self, AppState};
use crate::ingest;
use crate::integrity::{KeyError, Signer};
use crate::live::Streams;
use crate::vod::Library;

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
    #[error("media folder {path}: {source}")]
    Media {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Demo(#[from] ingest::demo::DemoError),
}

/// A running origin. Dropping it stops every task it started.
#[derive(Debug)]
pub struct Origin {
    pub http_addr: SocketAddr,
    pub rtmp_addr: Option<SocketAddr>,
    pub state: AppState,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
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
        let state = AppState {
            streams: streams.clone(),
            vod,
            signer,
        };
        let mut tasks = Vec::new();

        let listener = TcpListener::bind(config.http)
            .await
            .map_err(|source| StartError::Http {
                addr: config.http,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| StartError::Http {
            addr: config.http,
            source,
        })?;
        let app = http::router(state.clone());
        let limits = config.limits.clone();
        tasks.push(tokio::spawn(async move {
            http::serve(listener, app, &limits).await;
        }));
        tracing::info!(addr = %http_addr, "HTTP listening");

        let rtmp_addr = match config.rtmp {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Rtmp { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| StartError::Rtmp { addr, source })?;
                let s = streams.clone();
                let max = config.limits.max_rtmp_connections;
                tasks.push(tokio::spawn(async move {
                    ingest::rtmp::serve(listener, s, max).await;
                }));
                tracing::info!(addr = %bound, "RTMP listening: publish to rtmp://{bound}/live/STREAM");
                Some(bound)
            }
            None => None,
        };

        if config.demo {
            let clip = ingest::demo::Clip::parse(ingest::demo::DEMO_CLIP)?;
            let s = streams.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = ingest::demo::run(s, "demo", clip).await {
                    tracing::error!(error = %e, "demo channel stopped");
                }
            }));
        }

        let s = streams.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                s.reap();
            }
        }));

        Ok(Self {
            http_addr,
            rtmp_addr,
            state,
            tasks,
        })
    }
}
