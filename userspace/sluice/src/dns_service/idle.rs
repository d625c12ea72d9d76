//! One worker's DNS connections in the order they were last active, oldest first. The
//! limits take the connection idle longest from the head (see [`super::limits`]).
//!
//! The order is a doubly linked list threaded through a slab of nodes, so that adding
//! a connection, moving it to the back when it is active, evicting it and removing it
//! are each a few index writes, with no allocation once the slab has grown (about 1 %
//! of a one-query connection's cost in `bench/conn-cost.sh`'s profile, with the locks).
//! The connection idle longest from one address is found by walking from the head, at
//! most [`SOURCE_SCAN`] nodes: the connections an attacker holds idle to lock out
//! others behind its address are the ones idle longest, found at once; a list per
//! source would cost a hash lookup for every connection to serve the rare newcomer at
//! the per-source limit.

use std::net::Ipv4Addr;

use stack::Wake;

/// No node: the end of a list.
const NIL: u32 = u32::MAX;

/// The most nodes looked at for the connection from one address idle longest: a
/// newcomer from an address whose connections are all active more recently than that
/// many others is refused, at a bounded cost.
pub(super) const SOURCE_SCAN: usize = 256;

/// A node's neighbours in the list.
#[derive(Clone, Copy, Debug)]
struct Links {
    prev: u32,
    next: u32,
}

impl Links {
    const NONE: Links = Links {
        prev: NIL,
        next: NIL,
    };
}

/// A list's first (idle longest) and last (active last) node.
#[derive(Clone, Copy, Debug)]
struct Ends {
    head: u32,
    tail: u32,
}

impl Default for Ends {
    fn default() -> Self {
        Ends {
            head: NIL,
            tail: NIL,
        }
    }
}

/// One connection.
struct Node {
    peer: Ipv4Addr,
    /// Ends its session early (None once the node is free).
    wake: Option<Wake>,
    /// In the lists: it holds a place in the limits. An evicted connection keeps its
    /// node, unlisted, until its session ends.
    listed: bool,
    links: Links,
}

/// See the module's comment.
#[derive(Default)]
pub(super) struct IdleOrder {
    nodes: Vec<Node>,
    free: Vec<u32>,
    ends: Ends,
}

impl IdleOrder {
    /// Adds a connection from `peer` as the most recently active; returns its node.
    pub(super) fn push(&mut self, peer: Ipv4Addr, wake: Wake) -> u32 {
        let node = Node {
            peer,
            wake: Some(wake),
            listed: true,
            links: Links::NONE,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.push_back(i);
        i
    }

    /// The connection was active: it moves to the back. Returns whether it still
    /// holds its place (it was not evicted).
    pub(super) fn touch(&mut self, i: u32) -> bool {
        if !self.nodes[i as usize].listed {
            return false;
        }
        if self.ends.tail != i {
            self.unlink(i);
            self.push_back(i);
        }
        true
    }

    /// The connection idle longest.
    pub(super) fn oldest(&self) -> Option<u32> {
        (self.ends.head != NIL).then_some(self.ends.head)
    }

    /// The connection from `peer` idle longest, among the [`SOURCE_SCAN`] idle longest.
    pub(super) fn oldest_from(&self, peer: Ipv4Addr) -> Option<u32> {
        let mut i = self.ends.head;
        for _ in 0..SOURCE_SCAN {
            if i == NIL {
                return None;
            }
            let n = &self.nodes[i as usize];
            if n.peer == peer {
                return Some(i);
            }
            i = n.links.next;
        }
        None
    }

    /// Takes the connection out of the lists (its place goes to another) and wakes its
    /// session to close it; returns its peer.
    pub(super) fn evict(&mut self, i: u32) -> Ipv4Addr {
        self.unlink(i);
        let n = &mut self.nodes[i as usize];
        n.listed = false;
        if let Some(w) = &n.wake {
            w.wake();
        }
        n.peer
    }

    /// Whether the connection's session can be woken from this thread (a slot that
    /// threads share, past 64 workers, holds other threads' connections too).
    pub(super) fn wakeable(&self, i: u32) -> bool {
        self.nodes[i as usize]
            .wake
            .as_ref()
            .is_none_or(|w| w.is_local())
    }

    /// Whether the connection still holds its place (it was not evicted).
    pub(super) fn is_listed(&self, i: u32) -> bool {
        self.nodes[i as usize].listed
    }

    /// The connection's session ended: frees its node. Returns its peer and whether it
    /// still held its place.
    pub(super) fn remove(&mut self, i: u32) -> (Ipv4Addr, bool) {
        let listed = self.nodes[i as usize].listed;
        if listed {
            self.unlink(i);
        }
        let n = &mut self.nodes[i as usize];
        n.listed = false;
        n.wake = None;
        self.free.push(i);
        (n.peer, listed)
    }

    /// Connections listed (holding a place).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.nodes.iter().filter(|n| n.listed).count()
    }

    fn links(&mut self, i: u32) -> &mut Links {
        &mut self.nodes[i as usize].links
    }

    fn unlink(&mut self, i: u32) {
        let l = *self.links(i);
        if l.prev == NIL {
            self.ends.head = l.next;
        } else {
            self.links(l.prev).next = l.next;
        }
        if l.next == NIL {
            self.ends.tail = l.prev;
        } else {
            self.links(l.next).prev = l.prev;
        }
        *self.links(i) = Links::NONE;
    }

    fn push_back(&mut self, i: u32) {
        let tail = self.ends.tail;
        *self.links(i) = Links {
            prev: tail,
            next: NIL,
        };
        if tail == NIL {
            self.ends.head = i;
        } else {
            self.links(tail).next = i;
        }
        self.ends.tail = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn order(o: &IdleOrder) -> Vec<u32> {
        let mut v = Vec::new();
        let mut i = o.ends.head;
        while i != NIL {
            v.push(i);
            i = o.nodes[i as usize].links.next;
        }
        v
    }

    #[test]
    fn oldest_first_overall_and_by_source() {
        let mut o = IdleOrder::default();
        let a1 = o.push(A, Wake::nothing());
        let b1 = o.push(B, Wake::nothing());
        let a2 = o.push(A, Wake::nothing());
        assert_eq!(order(&o), [a1, b1, a2]);
        assert_eq!(o.oldest(), Some(a1));
        assert_eq!(o.oldest_from(A), Some(a1));
        assert_eq!(o.oldest_from(B), Some(b1));
        // a1 answers a query: it is the most recently active now.
        o.touch(a1);
        assert_eq!(order(&o), [b1, a2, a1]);
        assert_eq!(o.oldest(), Some(b1));
        assert_eq!(o.oldest_from(A), Some(a2));
        // Touching the last one changes nothing.
        assert!(o.touch(a1));
        assert_eq!(order(&o), [b1, a2, a1]);
    }

    #[test]
    fn evicted_connections_leave_the_lists_but_keep_their_node() {
        let mut o = IdleOrder::default();
        let a1 = o.push(A, Wake::nothing());
        let a2 = o.push(A, Wake::nothing());
        let b1 = o.push(B, Wake::nothing());
        assert_eq!(o.evict(a1), A);
        assert!(!o.is_listed(a1));
        assert_eq!(order(&o), [a2, b1]);
        assert_eq!(o.oldest_from(A), Some(a2));
        // Touching an evicted one does not put it back.
        assert!(!o.touch(a1));
        assert_eq!(order(&o), [a2, b1]);
        // Its session ends: the node is free, and it held no place.
        assert_eq!(o.remove(a1), (A, false));
        assert_eq!(o.remove(b1), (B, true));
        assert_eq!(o.oldest_from(B), None, "none from B left");
        assert_eq!(o.len(), 1);
        // Freed nodes are reused.
        let c = o.push(B, Wake::nothing());
        assert!(c == a1 || c == b1);
        assert_eq!(order(&o), [a2, c]);
    }

    #[test]
    fn the_scan_for_a_source_is_bounded() {
        let mut o = IdleOrder::default();
        let a = o.push(A, Wake::nothing());
        let bs: Vec<u32> = (0..SOURCE_SCAN)
            .map(|_| o.push(B, Wake::nothing()))
            .collect();
        assert_eq!(o.oldest_from(A), Some(a));
        o.touch(a);
        assert_eq!(o.oldest_from(A), None, "behind {SOURCE_SCAN} others");
        o.touch(bs[0]);
        assert_eq!(o.oldest_from(A), Some(a), "within reach again");
    }

    #[test]
    fn emptied_lists_are_whole_again() {
        let mut o = IdleOrder::default();
        let nodes: Vec<u32> = (0..6)
            .map(|i| o.push(if i % 2 == 0 { A } else { B }, Wake::nothing()))
            .collect();
        for &i in nodes.iter().rev() {
            o.touch(i);
        }
        for &i in &nodes {
            o.remove(i);
        }
        assert_eq!(o.oldest(), None);
        let d = o.push(A, Wake::nothing());
        assert_eq!(order(&o), [d]);
        assert_eq!(o.oldest_from(A), Some(d));
    }
}
