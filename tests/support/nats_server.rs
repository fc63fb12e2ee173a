//! A `nats-server` process of the test's own (JetStream on, a temporary store, a free port),
//! killed and cleaned up on drop — for tests that create streams, restart or stop the server,
//! which must never touch the shared broker.

#![allow(dead_code, unreachable_pub)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server` owned by a test.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
    extra: Vec<String>,
    jetstream: bool,
}

fn binary() -> String {
    std::env::var("KUMI_NATS_SERVER").unwrap_or_else(|_| {
        for p in [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ] {
            if std::path::Path::new(p).exists() {
                return p.to_owned();
            }
        }
        "nats-server".to_owned()
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server without JetStream.
    pub fn start_without_jetstream() -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            store: std::env::temp_dir().join("kumi-nats-unused"),
            extra: Vec::new(),
            jetstream: false,
        };
        server.spawn();
        server
    }

    /// Starts a server with extra command-line arguments (e.g. `--user`, `--pass`).
    pub fn start_with(extra: &[&str]) -> Self {
        let port = free_port();
        let store = std::env::temp_dir().join(format!("kumi-nats-{port}-{}", std::process::id()));
        let mut server = Self {
            child: None,
            port,
            store,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            jetstream: true,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = Command::new(binary());
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.jetstream {
            std::fs::create_dir_all(&self.store).expect("store dir");
            command.arg("-js").arg("-sd").arg(&self.store);
        }
        let child = command
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start nats-server ({}): {e}; install it or run scripts/brokers",
                    binary()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (the store stays, so a restart keeps JetStream data).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Puts the server in lame duck mode (SIGUSR2): it tells its clients it is going away.
    pub fn lame_duck(&self) {
        if let Some(child) = &self.child {
            let ok = Command::new("kill")
                .args(["-USR2", &child.id().to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "cannot signal nats-server");
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A cluster of `nats-server`s on loopback (routes between all, JetStream on each, server names
/// `kumi-0`, `kumi-1`, ...), owned by a test.
pub struct NatsCluster {
    /// The servers, by index (server `kumi-<i>` is `servers[i]`).
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` servers routed to each other.
    pub fn start(n: usize) -> Self {
        let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                NatsServer::start_with(&[
                    "--cluster_name",
                    "kumi-test",
                    "-n",
                    &format!("kumi-{i}"),
                    "--cluster",
                    &format!("nats://127.0.0.1:{port}"),
                    "--routes",
                    &routes,
                ])
            })
            .collect();
        Self { servers }
    }

    /// A multi-host URL naming every server.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("nats://{}", hosts.join(","))
    }

    /// The server named `name` (`kumi-<i>`).
    pub fn by_name(&mut self, name: &str) -> &mut NatsServer {
        let i: usize = name
            .strip_prefix("kumi-")
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("no server named {name}"));
        &mut self.servers[i]
    }
}
