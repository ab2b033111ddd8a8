//! Why a registry could not be reached, in one line a person can act on.
//!
//! reqwest's own message ("error sending request for url (...)") hides the cause several
//! errors down the chain: a rustls certificate error inside an `io::Error` inside hyper's
//! connect error. [`describe`] walks the chain, names the cause and, where there is one,
//! the option that fixes it (as docker and podman do: "certificate signed by unknown
//! authority").

use rustls::{CertificateError, Error as TlsError};
use std::error::Error as StdError;

/// What went wrong underneath a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The server's certificate does not lead to a trusted root.
    UnknownAuthority,
    /// The server's certificate is for other names.
    WrongName(String),
    /// The server's certificate has expired or is not valid yet.
    OutOfDate(String),
    /// Another certificate problem.
    Certificate(String),
    /// The server answered the TLS handshake with something that is not TLS.
    NotTls,
    /// The server ended the TLS handshake with an alert.
    TlsAlert(String),
    /// Nothing listens at the address.
    Refused,
    /// The host name does not resolve.
    Dns(String),
    /// No answer in time.
    Timeout,
    /// The connection was cut.
    Reset,
    /// Anything else: the innermost message of the chain.
    Other(String),
}

impl Cause {
    /// Whether a TLS server answered (so falling back to plain HTTP would hide the cause).
    pub fn is_tls_server(&self) -> bool {
        matches!(
            self,
            Cause::UnknownAuthority
                | Cause::WrongName(_)
                | Cause::OutOfDate(_)
                | Cause::Certificate(_)
                | Cause::TlsAlert(_)
        )
    }
}

/// The cause of `err`, from the first error in its chain that says what happened.
pub fn cause(err: &(dyn StdError + 'static)) -> Cause {
    let mut innermost = String::new();
    let mut timeout = false;
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<TlsError>() {
            return from_tls(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Cause::Refused,
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => return Cause::Reset,
                std::io::ErrorKind::TimedOut => return Cause::Timeout,
                _ => {}
            }
            // An io::Error's source() skips the error it wraps (its Display is that
            // error's), so the chain goes on through get_ref().
            if let Some(inner) = io.get_ref() {
                let inner: &(dyn StdError + 'static) = inner;
                next = Some(inner);
                continue;
            }
        }
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            timeout |= r.is_timeout();
        }
        let text = e.to_string();
        // hyper-util names a failed lookup "dns error"; the resolver's reason follows.
        if text == "dns error" || text.starts_with("dns error:") {
            let reason = e
                .source()
                .map(|s| s.to_string())
                .unwrap_or_else(|| text.clone());
            return Cause::Dns(reason);
        }
        // reqwest's own line carries the URL, which the caller already names.
        let text = match text.split_once(" for url (") {
            Some((head, _)) if e.is::<reqwest::Error>() => head.to_string(),
            _ => text,
        };
        if !text.is_empty() {
            innermost = text;
        }
        next = e.source();
    }
    if timeout {
        return Cause::Timeout;
    }
    // The innermost message is the cause; the outer ones only say where it surfaced.
    if innermost.is_empty() {
        innermost = "unknown error".into();
    }
    Cause::Other(innermost)
}

fn from_tls(e: &TlsError) -> Cause {
    match e {
        TlsError::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => Cause::UnknownAuthority,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Cause::WrongName(c.to_string())
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => Cause::OutOfDate(c.to_string()),
            CertificateError::Other(o) => Cause::Certificate(match o.0.downcast_ref() {
                Some(webpki::Error::CaUsedAsEndEntity) => {
                    "it is a CA certificate, not a server's".to_string()
                }
                Some(webpki::Error::RequiredEkuNotFoundContext(_)) => {
                    "it is not issued for TLS servers (extended key usage)".to_string()
                }
                Some(w) => format!("{w:?}"),
                None => o.to_string(),
            }),
            other => Cause::Certificate(other.to_string()),
        },
        TlsError::InvalidMessage(_) => Cause::NotTls,
        TlsError::AlertReceived(a) => Cause::TlsAlert(format!("{a:?}")),
        other => Cause::Other(other.to_string()),
    }
}

/// One line for `err` on a request to `registry` over `scheme` ("http" or "https"): the
/// cause, then what to do about it.
pub fn describe(err: &(dyn StdError + 'static), registry: &str, scheme: &str) -> String {
    match cause(err) {
        Cause::UnknownAuthority => "its TLS certificate is signed by an unknown authority: pass \
             --ca-file with the registry's CA certificate (PEM), or --insecure to accept any \
             certificate"
            .to_string(),
        Cause::WrongName(why) => format!(
            "its TLS certificate is not for this name ({why}): use the name the certificate \
             was issued for"
        ),
        Cause::OutOfDate(why) => format!(
            "its TLS certificate is out of date ({why}); check this machine's clock, or \
             renew the registry's certificate"
        ),
        Cause::Certificate(why) => format!("its TLS certificate is refused: {why}"),
        Cause::NotTls => format!(
            "it does not speak TLS at {registry}: pass --plain-http if it serves plain HTTP"
        ),
        Cause::TlsAlert(alert) => format!("the TLS handshake was refused ({alert})"),
        Cause::Refused => format!(
            "connection refused: nothing listens at {registry}; is the registry running, \
             and is the port right?"
        ),
        Cause::Dns(why) => {
            let host = host_of(registry);
            format!("cannot resolve the host name '{host}' ({why})")
        }
        Cause::Timeout => "no answer in time (timed out)".to_string(),
        Cause::Reset if scheme == "http" => format!(
            "the connection was closed without an HTTP answer: if {registry} serves HTTPS, \
             drop --plain-http"
        ),
        Cause::Reset => "the connection was closed before an answer".to_string(),
        Cause::Other(text) if scheme == "http" && looks_like_tls_reply(&text) => format!(
            "it did not answer in HTTP ({text}): if {registry} serves HTTPS, drop --plain-http"
        ),
        Cause::Other(text) => text,
    }
}

/// hyper's words for a reply that is not HTTP/1 (a TLS server's alert record).
fn looks_like_tls_reply(text: &str) -> bool {
    text.contains("invalid HTTP") || text.contains("parse") || text.contains("connection closed")
}

/// `host` of `host:port` or `[v6]:port`.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map_or(registry, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_tls(e: TlsError) -> std::io::Error {
        std::io::Error::other(e)
    }

    #[test]
    fn a_certificate_error_inside_an_io_error_is_found() {
        let e = io_tls(TlsError::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert_eq!(cause(&e), Cause::UnknownAuthority);
        let line = describe(&e, "reg.example:5000", "https");
        assert!(
            line.contains("unknown authority") && line.contains("--ca-file"),
            "{line}"
        );
    }

    #[test]
    fn a_refused_connection_names_the_address() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let line = describe(&e, "127.0.0.1:5999", "http");
        assert!(line.starts_with("connection refused"), "{line}");
        assert!(line.contains("127.0.0.1:5999"), "{line}");
    }

    #[test]
    fn a_handshake_answered_in_plain_text_suggests_plain_http() {
        let e = io_tls(TlsError::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert_eq!(cause(&e), Cause::NotTls);
        assert!(describe(&e, "r:1", "https").contains("--plain-http"));
        assert!(!cause(&e).is_tls_server());
    }

    #[test]
    fn only_certificate_problems_prove_a_tls_server() {
        assert!(Cause::UnknownAuthority.is_tls_server());
        assert!(!Cause::Refused.is_tls_server());
        assert!(!Cause::Reset.is_tls_server());
    }

    #[test]
    fn hosts_are_taken_from_names_ports_and_v6_literals() {
        assert_eq!(host_of("reg.example:5000"), "reg.example");
        assert_eq!(host_of("reg.example"), "reg.example");
        assert_eq!(host_of("[::1]:5000"), "::1");
    }
}
