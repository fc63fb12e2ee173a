//! [`WsClient`]: a websocket client on tokio-tungstenite, for service-to-service use and tests.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use kumi_core::{Error, ErrorKind, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::frame::{close_code, CloseInfo, ClosedBy, Frame, Utf8Bytes};

/// The underlying tokio-tungstenite stream of a [`WsClient`].
pub type ClientStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Options for [`WsClient::connect_with`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Largest message accepted from the server (default 16 MiB).
    pub max_message_size: usize,
    /// Extra headers on the upgrade request (authentication, say).
    pub headers: Vec<(String, String)>,
    /// How long connecting (TCP and handshake) may take (default 10 s).
    pub connect_timeout: Duration,
    /// For `wss://`: a PEM file of the CA certificates to verify the server with (e.g. a private
    /// CA), instead of the webpki roots. Needs the `tls` feature (kumi's `http-tls`).
    pub tls_ca: Option<std::path::PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            max_message_size: 16 * 1024 * 1024,
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            tls_ca: None,
        }
    }
}

/// A websocket client connection (`ws://` URLs, and `wss://` with the `tls` feature). Pings from
/// the server are answered while receiving.
///
/// ```no_run
/// # async fn run() -> kumi_core::Result<()> {
/// let mut ws = kumi_websocket::WsClient::connect("ws://127.0.0.1:8080/ws").await?;
/// ws.send_json(&serde_json::json!({ "hello": "kumi" })).await?;
/// let reply: serde_json::Value = ws.recv_json().await?;
/// ws.close().await?;
/// # Ok(()) }
/// ```
pub struct WsClient {
    url: String,
    stream: ClientStream,
    close: Option<CloseInfo>,
}

impl fmt::Debug for WsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsClient")
            .field("url", &self.url)
            .field("close", &self.close)
            .finish()
    }
}

fn ws_error(url: &str, what: &str, e: tungstenite::Error) -> Error {
    let kind = match &e {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            ErrorKind::Closed
        }
        _ => ErrorKind::Connect,
    };
    Error::new(kind, format!("websocket {url}: {what}: {e}")).with_source(e)
}

/// The TLS connector for `options.tls_ca` (`None`: tokio-tungstenite's default, which is plain
/// for `ws://` and the webpki roots for `wss://`).
#[cfg(feature = "tls")]
fn tls_connector(
    url: &str,
    options: &ClientOptions,
) -> Result<Option<tokio_tungstenite::Connector>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    // The provider kumi's other rustls users install; whichever comes first serves all.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(path) = &options.tls_ca else {
        return Ok(None);
    };
    let bad = |e: &dyn fmt::Display| {
        Error::config(format!(
            "websocket {url}: cannot use tls_ca {}: {e}",
            path.display()
        ))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no PEM certificate in it"));
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(tokio_tungstenite::Connector::Rustls(
        std::sync::Arc::new(config),
    )))
}

impl WsClient {
    /// Connects to `url` (`ws://host:port/path`).
    pub async fn connect(url: &str) -> Result<WsClient> {
        Self::connect_with(url, ClientOptions::default()).await
    }

    /// Connects to `url` with options.
    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<WsClient> {
        if url.starts_with("wss://") && !cfg!(feature = "tls") {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("websocket {url}: wss:// needs TLS; enable kumi's `http-tls` feature (kumi-websocket's `tls`)"),
            ));
        }
        let mut request = url.into_client_request().map_err(|e| {
            Error::config(format!(
                "'{url}' is not a websocket URL like ws://127.0.0.1:8080/ws"
            ))
            .with_source(e)
        })?;
        for (name, value) in &options.headers {
            let name = HeaderName::try_from(name.as_str()).map_err(|e| {
                Error::config(format!("websocket {url}: bad header name '{name}'")).with_source(e)
            })?;
            let value = HeaderValue::try_from(value.as_str()).map_err(|e| {
                Error::config(format!("websocket {url}: bad value for header '{name}'"))
                    .with_source(e)
            })?;
            request.headers_mut().insert(name, value);
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(options.max_message_size))
            .max_frame_size(Some(options.max_message_size));
        #[cfg(feature = "tls")]
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            true,
            tls_connector(url, &options)?,
        );
        #[cfg(not(feature = "tls"))]
        let connecting = {
            if options.tls_ca.is_some() {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("websocket {url}: tls_ca needs TLS; enable kumi's `http-tls` feature (kumi-websocket's `tls`)"),
                ));
            }
            tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        };
        let (stream, _response) = tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::TimedOut,
                    format!(
                        "websocket {url}: no connection within {:?}",
                        options.connect_timeout
                    ),
                )
            })?
            .map_err(|e| ws_error(url, "cannot connect", e))?;
        Ok(WsClient {
            url: url.to_owned(),
            stream,
            close: None,
        })
    }

    /// The URL connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: impl Into<Frame>) -> Result<()> {
        let message = match frame.into() {
            Frame::Text(text) => Message::text(text.as_str()),
            Frame::Binary(bytes) => Message::Binary(bytes),
        };
        let url = &self.url;
        self.stream
            .send(message)
            .await
            .map_err(|e| ws_error(url, "send failed", e))
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<()> {
        self.send(Frame::from(text.into())).await
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: impl Into<Bytes>) -> Result<()> {
        self.send(Frame::Binary(bytes.into())).await
    }

    /// Sends `value` as a JSON text frame.
    pub async fn send_json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.send(Frame::json(value)?).await
    }

    /// The next text or binary frame; `None` once the connection closed (see
    /// [`WsClient::close_info`] for how).
    pub async fn recv(&mut self) -> Result<Option<Frame>> {
        loop {
            let Some(message) = self.stream.next().await else {
                if self.close.is_none() {
                    self.close = Some(CloseInfo::new(None, "connection dropped", ClosedBy::Peer));
                }
                return Ok(None);
            };
            match message {
                Ok(Message::Text(text)) => {
                    let text = Utf8Bytes::try_from(Bytes::from(text)).map_err(|e| {
                        Error::codec(format!("websocket {}: text frame is not UTF-8", self.url))
                            .with_source(e)
                    })?;
                    return Ok(Some(Frame::Text(text)));
                }
                Ok(Message::Binary(bytes)) => return Ok(Some(Frame::Binary(bytes))),
                Ok(Message::Close(frame)) => {
                    self.close = Some(match frame {
                        Some(f) => {
                            CloseInfo::new(Some(f.code.into()), f.reason.as_str(), ClosedBy::Peer)
                        }
                        None => CloseInfo::new(None, "closed without a code", ClosedBy::Peer),
                    });
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Ok(None);
                }
                Err(e) => {
                    if self.close.is_some() {
                        return Ok(None);
                    }
                    return Err(ws_error(&self.url, "receive failed", e));
                }
            }
        }
    }

    /// The next frame as text; an error if the connection closed or the frame is binary.
    pub async fn recv_text(&mut self) -> Result<String> {
        match self.recv().await? {
            Some(Frame::Text(text)) => Ok(text.to_string()),
            Some(Frame::Binary(_)) => Err(Error::codec(format!(
                "websocket {}: expected a text frame, got a binary one",
                self.url
            ))),
            None => Err(self.closed_error()),
        }
    }

    /// The next frame decoded as JSON; an error if the connection closed or it does not decode.
    pub async fn recv_json<T: DeserializeOwned>(&mut self) -> Result<T> {
        match self.recv().await? {
            Some(frame) => frame.decode_json(),
            None => Err(self.closed_error()),
        }
    }

    fn closed_error(&self) -> Error {
        let how = self
            .close
            .as_ref()
            .map_or_else(|| "closed".to_owned(), ToString::to_string);
        Error::new(ErrorKind::Closed, format!("websocket {}: {how}", self.url))
    }

    /// How the connection closed, once it did.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.close.as_ref()
    }

    /// Closes with `1000 Normal Closure` and waits for the server's close frame.
    pub async fn close(self) -> Result<Option<CloseInfo>> {
        self.close_with(close_code::NORMAL, "").await
    }

    /// Closes with `code` and `reason` and waits (up to 5 s) for the server's close frame.
    pub async fn close_with(mut self, code: u16, reason: &str) -> Result<Option<CloseInfo>> {
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        match self.stream.close(Some(frame)).await {
            Ok(())
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {}
            Err(e) => return Err(ws_error(&self.url, "close failed", e)),
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = self.recv().await {}
        })
        .await;
        Ok(self.close)
    }

    /// The tokio-tungstenite stream, for what this client does not offer.
    pub fn stream_mut(&mut self) -> &mut ClientStream {
        &mut self.stream
    }
}
