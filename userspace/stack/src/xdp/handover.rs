//! Hand-over between workers: a segment of one worker's active open that arrived on
//! another worker's queue (the peer's hash chose the queue, not ours) is passed to its
//! owner.

use std::sync::Arc;

use tokio::sync::Notify;

/// How a worker reaches another: frames for its connections, and its wake-up.
pub(crate) struct Peer {
    pub(super) inbox: std::sync::mpsc::Sender<Vec<u8>>,
    pub(super) wake: Arc<Notify>,
}

/// The workers' links to each other, and each worker's receiving end.
pub(crate) fn peers(workers: usize) -> (Arc<[Peer]>, Vec<std::sync::mpsc::Receiver<Vec<u8>>>) {
    let (links, inboxes): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| {
            let (tx, rx) = std::sync::mpsc::channel();
            (
                Peer {
                    inbox: tx,
                    wake: Arc::new(Notify::new()),
                },
                rx,
            )
        })
        .unzip();
    (links.into(), inboxes)
}
