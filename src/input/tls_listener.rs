//! An HTTPS listener for axum: TLS handshakes run on their own tasks, off the accept path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::guard::{accept_admitted, Gate, Guarded};

/// A connection of the HTTPS input: TLS over a guarded TCP connection.
pub type TlsConn = tokio_rustls::server::TlsStream<Guarded<TcpStream>>;

/// An HTTPS listener for axum: TLS handshakes run on their own tasks (a slow or broken
/// client cannot hold up the others) and finished connections are handed over.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsConn, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `l` and hands over connections whose TLS handshake finished.
    /// Connections pass `gate` (its caps and deadlines) before the handshake.
    pub fn new(
        l: TcpListener,
        cfg: Arc<rustls::ServerConfig>,
        gate: Arc<Gate>,
    ) -> std::io::Result<TlsListener> {
        let local = l.local_addr()?;
        let (tx, rx) = mpsc::channel(128);
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        tokio::spawn(async move {
            loop {
                let (s, peer, ticket) = accept_admitted(&l, &gate).await;
                if tx.is_closed() {
                    return;
                }
                let s = gate.guard(s, ticket, peer);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(s)).await {
                        Ok(Ok(t)) => {
                            let _ = tx.send((t, peer)).await;
                        }
                        Ok(Err(e)) => tracing::warn!(%peer, error = %e, "HTTPS handshake failed."),
                        Err(_) => tracing::warn!(%peer, "HTTPS handshake timed out."),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
