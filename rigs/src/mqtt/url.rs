//! Where the broker is (`mqtt://host:port`, `mqtts://host:port`), who we are
//! to it (user and password, never on the command line) and what TLS trusts.

use std::fmt;
use std::path::{Path, PathBuf};

/// Plain TCP or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `mqtt://`, default port 1883.
    Mqtt,
    /// `mqtts://` (TLS), default port 8883.
    Mqtts,
}

/// A broker address parsed from `mqtt://host[:port]` or `mqtts://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub scheme: Scheme,
    /// Host name or IP address (an IPv6 address without its brackets).
    pub host: String,
    pub port: u16,
}

/// Why a broker URL, credential or TLS file is not usable.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("broker URL {url:?}: {reason} (expected mqtt://HOST:PORT or mqtts://HOST:PORT, e.g. mqtt://127.0.0.1:1883)")]
    BadUrl { url: String, reason: String },
    #[error("broker password: {0}")]
    Password(String),
}

impl BrokerUrl {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]`. A user or
    /// password in the URL is refused (it would end up in logs and process
    /// lists): use `--broker-user` and the password environment variable or
    /// file instead.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let bad = |reason: &str| UrlError::BadUrl {
            url: redact(url),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
            (Scheme::Mqtt, r)
        } else if let Some(r) = url.strip_prefix("mqtts://") {
            (Scheme::Mqtts, r)
        } else if url.contains("://") {
            return Err(bad("unsupported scheme"));
        } else {
            return Err(bad("missing scheme"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err(bad(
                "credentials in the URL are not accepted; use --broker-user and \
                 MASLOW_BROKER_PASSWORD or --broker-password-file",
            ));
        }
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err(bad("a path, query or fragment is not supported"));
        }
        let default_port = match scheme {
            Scheme::Mqtt => 1883,
            Scheme::Mqtts => 8883,
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let Some((h, after)) = v6.split_once(']') else {
                return Err(bad("unclosed '[' in an IPv6 address"));
            };
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
            };
            (h, port)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => {
                    return Err(bad(&format!("port {p:?} is not a number in 1..=65535")))
                }
                Ok(n) => n,
            },
        };
        Ok(BrokerUrl {
            scheme,
            host: host.to_owned(),
            port,
        })
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn loopback(port: u16) -> Self {
        BrokerUrl {
            scheme: Scheme::Mqtt,
            host: "127.0.0.1".to_owned(),
            port,
        }
    }

    pub fn is_tls(&self) -> bool {
        self.scheme == Scheme::Mqtts
    }
}

/// `url` with any `user:password@` replaced, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            format!("{}<credentials redacted>{}", &url[..s + 3], &url[at..])
        }
        (None, Some(at)) => format!("<credentials redacted>{}", &url[at..]),
        _ => url.to_owned(),
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Mqtt => "mqtt",
            Scheme::Mqtts => "mqtts",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for BrokerUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        BrokerUrl::parse(s)
    }
}

/// A broker user and password. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The environment variable the CLI reads the broker password from.
pub const PASSWORD_ENV: &str = "MASLOW_BROKER_PASSWORD";

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            password: password.into(),
        }
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The password from `file` (its first line; a trailing newline is not
    /// part of it) when given, else from the environment variable `env`.
    pub fn from_sources(user: &str, file: Option<&Path>, env: &str) -> Result<Self, UrlError> {
        let password = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    UrlError::Password(format!("cannot read the password file {}: {e}", p.display()))
                })?;
                let line = text.lines().next().unwrap_or("").to_owned();
                if line.is_empty() {
                    return Err(UrlError::Password(format!(
                        "the password file {} is empty",
                        p.display()
                    )));
                }
                line
            }
            None => std::env::var(env).map_err(|_| {
                UrlError::Password(format!(
                    "--broker-user {user:?} is given but no password: set {env} or pass --broker-password-file FILE"
                ))
            })?,
        };
        Ok(Credentials::new(user, password))
    }
}

/// TLS trust and client identity for `mqtts://` (PEM files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) that sign the broker's certificate; `None`: the
    /// system's trust store.
    pub ca: Option<PathBuf>,
    /// Client certificate chain, for brokers that require client certificates.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemes_hosts_and_ports() {
        let u = BrokerUrl::parse("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (Scheme::Mqtt, "127.0.0.1", 1884)
        );
        let u = BrokerUrl::parse("mqtts://broker.example").unwrap();
        assert_eq!((u.scheme, u.port), (Scheme::Mqtts, 8883));
        let u = BrokerUrl::parse("mqtt://[::1]:1000/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1000));
        assert_eq!(u.to_string(), "mqtt://[::1]:1000");
        assert_eq!(BrokerUrl::parse("mqtt://h").unwrap().port, 1883);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("tcp://h:1", "unsupported scheme"),
            ("h:1883", "missing scheme"),
            ("mqtt://:1883", "missing host"),
            ("mqtt://h:0", "1..=65535"),
            ("mqtt://h:99999", "1..=65535"),
            ("mqtt://u:secret@h:1", "credentials in the URL"),
            ("mqtt://h:1/x", "path"),
        ] {
            let e = BrokerUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn credentials_never_print_the_password() {
        let c = Credentials::new("fleet", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn password_from_a_file_or_missing() {
        let dir = std::env::temp_dir().join(format!("maslow-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        let c = Credentials::from_sources("u", Some(&f), "MASLOW_TEST_NO_SUCH_VAR").unwrap();
        assert_eq!(c.password(), "s3cret");
        let e = Credentials::from_sources("u", None, "MASLOW_TEST_NO_SUCH_VAR").unwrap_err();
        assert!(e.to_string().contains("MASLOW_TEST_NO_SUCH_VAR"), "{e}");
    }
}
