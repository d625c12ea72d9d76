//! The handlers built into `sluice serve`, and `--listen PORT=HANDLER` that picks one
//! per port. The dns handler is the DNS service (sluice::dns_service); echo and discard,
//! for smoke tests, are here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use stack::{Flow, Listener};

/// The handlers built into the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinHandler {
    /// Authoritative DNS over TCP from the zones given.
    Dns,
    /// Sends back what it reads; closes after the peer does.
    Echo,
    /// Reads and drops everything; closes after the peer does.
    Discard,
}

/// Parses a `--listen` (or `listen` in the config file): PORT=HANDLER.
pub fn parse_listen(s: &str) -> Result<(u16, BuiltinHandler), String> {
    let (port, handler) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected PORT=HANDLER, e.g. 53=dns"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number"))?;
    if port == 0 {
        return Err("port 0 cannot be listened on".into());
    }
    let handler = match handler {
        "dns" => BuiltinHandler::Dns,
        "echo" => BuiltinHandler::Echo,
        "discard" => BuiltinHandler::Discard,
        other => return Err(format!("unknown handler {other:?} (dns, echo, discard)")),
    };
    Ok((port, handler))
}

/// Counters the built-in echo and discard handlers keep, printed at exit.
#[derive(Default)]
pub struct HandlerStats {
    pub flows: AtomicU64,
    pub bytes: AtomicU64,
}

/// The echo or discard handler, counting into `stats`.
pub fn stream_listener(handler: BuiltinHandler, stats: Arc<HandlerStats>) -> Listener {
    Listener::new(move |mut flow: Flow| {
        let stats = stats.clone();
        async move {
            stats.flows.fetch_add(1, Ordering::Relaxed);
            while let Ok(Some(data)) = flow.read().await {
                stats.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                if handler == BuiltinHandler::Echo && flow.write(data).await.is_err() {
                    return;
                }
            }
            flow.close().await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_specs_parse() {
        assert_eq!(parse_listen("7=echo").unwrap(), (7, BuiltinHandler::Echo));
        assert_eq!(
            parse_listen("9=discard").unwrap(),
            (9, BuiltinHandler::Discard)
        );
        assert_eq!(parse_listen("53=dns").unwrap(), (53, BuiltinHandler::Dns));
        assert!(parse_listen("7").unwrap_err().contains("PORT=HANDLER"));
        assert!(parse_listen("0=echo").is_err());
        assert!(parse_listen("70000=echo").is_err());
        assert!(parse_listen("7=dns2")
            .unwrap_err()
            .contains("unknown handler"));
    }
}
