//! What the `http` kind does for each item: fill its URL template, GET it, and turn the
//! answer into a value or a clear error.
//!
//! * [`Template`]: `http://127.0.0.1:8080/items/{}`, with `{}` replaced by the item's
//!   number (in decimal) or text (percent-encoded, so any text makes a valid URL).
//! * [`Fetcher`]: one HTTP/1.1 client (hyper) shared by all of the stage's requests, with
//!   its pool of kept-alive connections. Plain `http://` only: this build has no TLS.
//! * A status outside 200–299, a refused connection, a body over `max_body`: each fails
//!   the item with a message naming the URL and what happened (the engine adds the stage
//!   and the item's id): `stage `fetch` failed on item #3: GET http://…/items/3 answered
//!   404 Not Found`.
//!
//! Requests run on the runtime the CLI hands the pipeline ([`crate::build`]): a tokio
//! runtime with I/O, which the engine's own (timers only) is not.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::value::{Fault, Slot, Value};

/// The placeholder an item's key replaces.
pub const PLACEHOLDER: &str = "{}";

/// A URL with `{}` where each item's key goes.
#[derive(Clone, Debug)]
pub struct Template {
    parts: Vec<String>,
}

impl Template {
    /// Checks `text`: an `http://` URL with a host, valid once `{}` is filled in.
    ///
    /// # Errors
    ///
    /// Why it is not usable, in words.
    pub fn parse(text: &str) -> Result<Template, String> {
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("https://") {
            return Err("https is not supported (this build has no TLS); use http://".into());
        }
        if !lower.starts_with("http://") {
            return Err(format!("{text:?} is not an http:// URL"));
        }
        let template = Template {
            parts: text.split(PLACEHOLDER).map(str::to_owned).collect(),
        };
        let sample = template.fill("0");
        match sample.parse::<hyper::Uri>() {
            Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => Ok(template),
            Ok(_) => Err(format!("{text:?} has no host")),
            Err(e) => Err(format!("{text:?} is not a valid URL: {e}")),
        }
    }

    /// The URL for one item's key (already encoded).
    pub fn fill(&self, key: &str) -> String {
        self.parts.join(key)
    }
}

/// Percent-encodes everything but the unreserved characters (`A–Z a–z 0–9 - . _ ~`).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The key an item puts in its URL: a number in decimal, text percent-encoded.
///
/// # Errors
///
/// A [`Fault`] if the value (or the record's field) is neither.
pub fn key(slot: &Slot, value: &Value) -> Result<String, Fault> {
    match slot.read(value)? {
        Value::Number(n) => Ok(n.to_string()),
        Value::Text(t) => Ok(encode(t)),
        other => Err(slot.mismatch("a number or text", value, other)),
    }
}

/// What a successful answer becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The body, as text (invalid UTF-8 replaced).
    Body,
    /// The status code, as a number.
    Status,
}

/// Sends the stage's GETs on one shared client.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: Client<HttpConnector, Empty<Bytes>>,
    output: Output,
    max_body: usize,
}

/// An error with its causes, `: `-separated (hyper's own message alone says little).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

impl Fetcher {
    /// A client whose answers become `output`, reading bodies up to `max_body` bytes.
    pub fn new(output: Output, max_body: usize) -> Fetcher {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Fetcher {
            client: Client::builder(TokioExecutor::new()).build(connector),
            output,
            max_body,
        }
    }

    /// GETs `url`.
    ///
    /// # Errors
    ///
    /// A [`Fault`] naming the URL: it cannot be requested, the status is not 2xx, or the
    /// body cannot be read whole.
    pub async fn get(&self, url: String) -> Result<Value, Fault> {
        let fault = |what: String| Fault::Other(format!("GET {url}: {what}"));
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| fault(format!("not a valid URL: {e}")))?;
        let request = hyper::Request::get(uri)
            .header(hyper::header::USER_AGENT, "millrace")
            .body(Empty::<Bytes>::new())
            .map_err(|e| fault(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| fault(with_causes(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Fault::Other(format!("GET {url} answered {status}")));
        }
        match self.output {
            Output::Status => Ok(Value::Number(u64::from(status.as_u16()))),
            Output::Body => {
                let body = Limited::new(response.into_body(), self.max_body)
                    .collect()
                    .await
                    .map_err(|e| {
                        let e: &dyn std::error::Error = &*e;
                        fault(format!("reading the body: {}", with_causes(e)))
                    })?
                    .to_bytes();
                Ok(Value::text(&String::from_utf8_lossy(&body)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_take_http_urls_only() {
        let t = Template::parse("http://127.0.0.1:8080/items/{}?full={}").unwrap();
        assert_eq!(t.fill("7"), "http://127.0.0.1:8080/items/7?full=7");
        assert!(Template::parse("https://example.invalid/{}")
            .unwrap_err()
            .contains("no TLS"));
        assert!(Template::parse("ftp://x/{}").is_err());
        assert!(Template::parse("http://").is_err());
        assert!(Template::parse("http://exa mple/{}").is_err());
    }

    #[test]
    fn keys_are_numbers_or_encoded_text() {
        let slot = Slot::new("value", "value");
        assert_eq!(key(&slot, &Value::Number(42)).unwrap(), "42");
        assert_eq!(key(&slot, &Value::text("a b/é")).unwrap(), "a%20b%2F%C3%A9");
        assert!(key(&slot, &Value::Bytes(Bytes::from_static(b"x"))).is_err());
    }
}
