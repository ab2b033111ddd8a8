//! Connections: the accept loop in front of the router, for HTTP and HTTPS alike, and the
//! limits no request handler can enforce because they act before there is a request.
//!
//! - **Connections**, at most `max_connections` in all and `max_connections_per_address`
//!   from one client network (an IPv4 address, an IPv6 /64); trusted proxies are not held
//!   to the per-address limit (every client behind them shares their address). A
//!   connection over a limit is answered `503` and closed at once, so a client that holds
//!   many sockets open cannot take the last file descriptor.
//! - **Time to send a request head**: `header_read_timeout` from the first byte a
//!   connection may send (and again between keep-alive requests), the TLS handshake
//!   included. A slowloris client is closed when it runs out.
//! - **Idle connections**: closed when no byte has moved either way for `idle_timeout`
//!   (what hyper's HTTP/2 side and a stalled body would otherwise wait on forever).
//! - **Shutdown**: stops accepting, lets requests in flight finish for up to 30 s.
//!
//! Each request carries [`ClientAddr`]: the peer's address, or, when the peer is a trusted
//! proxy, the client it forwarded for (`Forwarded: for=`, else `X-Forwarded-For`), read
//! from the right so a client cannot claim an address by sending the header itself.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::ratelimit::ClientNetwork;

/// The address a request came from, as far as bonded can tell (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// What the connection layer enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Peers whose `Forwarded` / `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Limits {
    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// One address of a `Forwarded` `for=` or `X-Forwarded-For` entry: `192.0.2.1`,
/// `"[2001:db8::1]:4711"`, `192.0.2.1:80`. Obfuscated identifiers and `unknown` are not
/// addresses.
fn forwarded_address(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    // v4 with a port
    s.rsplit_once(':')
        .and_then(|(host, _)| host.parse::<std::net::Ipv4Addr>().ok())
        .map(IpAddr::V4)
}

/// The client a request is from: the peer, or, behind trusted proxies, the rightmost
/// forwarded address that is not itself a trusted proxy. An unreadable header leaves the
/// peer (the proxy) as the client, which fails towards the proxy's own limits.
pub fn client_address(peer: IpAddr, headers: &axum::http::HeaderMap, limits: &Limits) -> IpAddr {
    if !limits.trusted(peer) {
        return canonical(peer);
    }
    let mut hops: Vec<Option<IpAddr>> = Vec::new();
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        for element in forwarded.iter().flat_map(|v| v.split(',')) {
            let for_ = element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v)
            });
            hops.push(for_.and_then(forwarded_address));
        }
    } else {
        for v in headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            hops.extend(v.split(',').map(forwarded_address));
        }
    }
    let mut client = canonical(peer);
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) => {
                client = canonical(ip);
                if !limits.trusted(client) {
                    break;
                }
            }
            // A hop nobody can read: stop at the last trusted one.
            None => break,
        }
    }
    client
}

/// Connections open per client network.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<ClientNetwork, usize>>);

/// A connection counted against its network until dropped.
struct AddressSlot {
    table: Arc<PerAddress>,
    net: ClientNetwork,
}

impl PerAddress {
    fn acquire(self: &Arc<Self>, net: ClientNetwork, max: usize) -> Option<AddressSlot> {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = t.entry(net).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: self.clone(),
            net,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = t.get_mut(&self.net) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.net);
            }
        }
    }
}

/// A stream that fails with `TimedOut` once no byte has moved either way for `timeout`.
struct IdleTimeout<S> {
    inner: S,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        IdleTimeout {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    fn moved(&mut self) {
        let next = Instant::now() + self.timeout;
        self.deadline.as_mut().reset(next);
    }

    /// After the inner stream said Pending: whether the deadline has passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

impl<S> IdleTimeout<S> {
    /// A write's outcome: bytes written count as activity; waiting past the deadline is
    /// an error.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after_write(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The answer to a connection over a limit: written once, without waiting, then closed.
fn refuse(stream: TcpStream, why: &str, tls: bool) {
    if !tls {
        let body = format!(
            "{{\"errors\":[{{\"code\":\"TOOMANYREQUESTS\",\"message\":\"{why}; retry later\",\"detail\":null}}]}}"
        );
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.try_write(response.as_bytes());
    }
    drop(stream);
}

/// Raises the soft limit on open files to the hard one, and returns the soft limit now in
/// force (`None` where it cannot be read).
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (limit.current, limit.maximum) {
        if cur < max {
            limit.current = Some(max);
            if setrlimit(Resource::Nofile, limit).is_err() {
                return Some(cur);
            }
        }
    }
    getrlimit(Resource::Nofile).current
}

/// Serves `app` on `listener` (HTTPS when `tls` is given; its configuration is read for
/// every connection, so a reload applies to the next handshake) until `shutdown`
/// resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or a connection reset before accept): wait
                    // a moment instead of spinning; connections closing will free some.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, max = limits.max_connections, "connection refused: the registry is at its connection limit");
            refuse(
                stream,
                "the registry is at its connection limit",
                tls.is_some(),
            );
            continue;
        };
        let slot = if limits.trusted(peer.ip()) {
            None
        } else {
            let net = ClientNetwork::of(peer.ip());
            match per_address.acquire(net, limits.max_connections_per_address) {
                Some(s) => Some(s),
                None => {
                    tracing::warn!(peer = %peer, max = limits.max_connections_per_address, "connection refused: too many connections from this address");
                    refuse(
                        stream,
                        &format!(
                            "too many connections from {net} (at most {})",
                            limits.max_connections_per_address
                        ),
                        tls.is_some(),
                    );
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let (app, limits, tls) = (app.clone(), limits.clone(), tls.clone());
        tokio::spawn(async move {
            connection(stream, peer, app, limits, tls, watcher, permit, slot).await;
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("requests still in flight after 30 s; stopping anyway");
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Arc<Limits>,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    watcher: hyper_util::server::graceful::Watcher,
    _permit: OwnedSemaphorePermit,
    _slot: Option<AddressSlot>,
) {
    let io = IdleTimeout::new(stream, limits.idle_timeout);
    match tls {
        // Plain HTTP is HTTP/1.1 (registry clients do not use h2c): hyper's header timer
        // runs from the first byte the connection may send.
        None => http(io, peer, app, limits, watcher, false).await,
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.get_inner());
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io)).await {
                Ok(Ok(stream)) => {
                    // ALPN says which protocol the client chose: no sniffing of the first
                    // bytes, which would have no deadline.
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    http(stream, peer, app, limits, watcher, h2).await
                }
                Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %peer, "TLS handshake took too long"),
            }
        }
    }
}

async fn http<S>(
    io: S,
    peer: SocketAddr,
    app: Router,
    limits: Arc<Limits>,
    watcher: hyper_util::server::graceful::Watcher,
    h2: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let header_read_timeout = limits.header_read_timeout;
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let client = client_address(peer.ip(), req.headers(), &limits);
            req.extensions_mut().insert(ClientAddr(client));
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let app = app.clone();
            async move {
                use tower::ServiceExt as _;
                app.oneshot(req.map(axum::body::Body::new)).await
            }
        });
    let io = TokioIo::new(io);
    let ended = if h2 {
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(io, service);
        watcher.watch(conn).await
    } else {
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(io, service);
        watcher.watch(conn).await
    };
    if let Err(e) = ended {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn limits(trusted: &[&str]) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_connections: 1,
            max_connections_per_address: 1,
            trusted_proxies: trusted.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let l = limits(&["10.0.0.0/8", "::1/128"]);
        let xff = headers(&[("x-forwarded-for", "203.0.113.7, 10.0.0.2")]);
        // Not a trusted peer: the header is the client's own claim, ignored.
        assert_eq!(
            client_address(ip("198.51.100.1"), &xff, &l),
            ip("198.51.100.1")
        );
        // Through two trusted proxies: the first untrusted hop from the right.
        assert_eq!(client_address(ip("10.0.0.1"), &xff, &l), ip("203.0.113.7"));
        // A client prepending a fake address does not get it: the proxy appended the real
        // one, which is read first.
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &spoofed, &l),
            ip("203.0.113.7")
        );
        // RFC 7239 Forwarded wins over X-Forwarded-For, with ports and brackets.
        let fwd = headers(&[
            (
                "forwarded",
                "for=192.0.2.60;proto=http, for=\"[2001:db8::17]:4711\"",
            ),
            ("x-forwarded-for", "198.51.100.99"),
        ]);
        assert_eq!(client_address(ip("::1"), &fwd, &l), ip("2001:db8::17"));
        // Unreadable hops stop the walk at the proxy.
        let junk = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client_address(ip("10.0.0.1"), &junk, &l), ip("10.0.0.1"));
        // No header: the proxy itself.
        assert_eq!(
            client_address(ip("10.0.0.1"), &HeaderMap::new(), &l),
            ip("10.0.0.1")
        );
        // IPv4-mapped peers are IPv4.
        assert_eq!(
            client_address(ip("::ffff:10.0.0.1"), &xff, &l),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn per_address_slots_are_counted_and_released() {
        let table = Arc::new(PerAddress::default());
        let net = ClientNetwork::of(ip("192.0.2.1"));
        let a = table.acquire(net, 2).unwrap();
        let b = table.acquire(net, 2).unwrap();
        assert!(table.acquire(net, 2).is_none());
        assert!(table
            .acquire(ClientNetwork::of(ip("192.0.2.2")), 2)
            .is_some());
        drop(a);
        let _c = table.acquire(net, 2).unwrap();
        drop(b);
    }
}
