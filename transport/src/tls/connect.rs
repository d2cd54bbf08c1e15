//! Channels to a node: `https://HOST:PORT` only, TLS done here, so a URL
//! can never fall back to plaintext.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tonic::transport::{Channel, Endpoint, Uri};

use super::TlsError;

/// Checks that a URL is `https://host:port` (and nothing after the port).
pub fn check_https_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "{url:?} must start with https:// (Pluis never talks plaintext)"
        ));
    }
    if uri.host().is_none() || uri.port_u16().is_none() {
        return Err(format!(
            "{url:?} must name a host and a port: https://HOST:PORT"
        ));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(format!("{url:?} must not have a path"));
    }
    Ok(uri)
}

/// A lazily connecting gRPC channel to `url` over mutual TLS.
///
/// The connection is made on first use; a peer that is down does not hold
/// up start-up, and each call gets the error.
pub fn connect(
    url: &str,
    tls: Arc<ClientConfig>,
    connect_timeout: Duration,
) -> Result<Channel, TlsError> {
    check_https_url(url).map_err(TlsError::Url)?;
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| TlsError::Url(format!("{url:?}: {e}")))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    let connector = tower::service_fn(move |uri: Uri| {
        let tls = tls.clone();
        async move {
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other("URL has no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(host)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_host_port_urls_pass() {
        assert!(check_https_url("https://127.0.0.1:7101").is_ok());
        assert!(check_https_url("https://localhost:7101/").is_ok());
        for (bad, why) in [
            ("http://127.0.0.1:7101", "https://"),
            ("https://127.0.0.1", "port"),
            ("https://127.0.0.1:7101/x", "path"),
            ("127.0.0.1:7101", "https://"),
        ] {
            let err = check_https_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
