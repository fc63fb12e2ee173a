//! A TCP proxy a test owns, between kumi and a broker: it can cut every connection (a network
//! fault) and refuse new ones for a while (the broker looks down), so that tests never stop or
//! cut a shared broker.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy (stopped when dropped with its runtime).
pub struct Proxy {
    /// `127.0.0.1:<port>` the proxy listens on.
    pub addr: String,
    cut: watch::Sender<u64>,
    down: Arc<AtomicBool>,
    /// Connections accepted (and passed on) so far.
    pub accepted: Arc<AtomicUsize>,
}

impl Proxy {
    /// Listens on a free port and passes each connection on to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr").to_string();
        let (cut, _) = watch::channel(0u64);
        let cuts = cut.clone();
        let down = Arc::new(AtomicBool::new(false));
        let is_down = Arc::clone(&down);
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_down.load(Ordering::SeqCst) {
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let upstream = upstream.clone();
                let mut killed = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = killed.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            cut,
            down,
            accepted,
        }
    }

    /// Drops every open connection (new ones are accepted).
    pub fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// Cuts every connection and refuses new ones (`true`), or accepts again (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.cut_all();
        }
    }
}
