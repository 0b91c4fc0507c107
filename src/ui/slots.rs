//! Who holds the dashboard's connections: at most [`MAX_CONNECTIONS`] at once and
//! [`PER_PEER`] from one address beyond loopback. When every slot is taken, the connection
//! that has been sending its request the longest is given up for the new one: a browser sends
//! its request at once, so a client that opens many connections and sends slowly (or not at
//! all) cannot keep the page from being served.

use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Connections held at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections held at once for one address other than loopback (on loopback every client,
/// the user's browser too, has the same address: there the eviction above is the guard).
pub const PER_PEER: usize = 16;

#[derive(Default)]
pub struct Slots {
    held: Mutex<Vec<Slot>>,
    next: AtomicU64,
}

struct Slot {
    id: u64,
    peer: IpAddr,
    opened: Instant,
    /// Still sending its request (not yet being answered).
    reading: bool,
    /// To close it when it is given up.
    stream: TcpStream,
}

/// A connection's slot, freed when dropped.
pub struct Ticket {
    slots: Arc<Slots>,
    id: u64,
}

impl Slots {
    /// A slot for `stream` from `peer`, or `None` when it must be turned away.
    pub fn admit(self: &Arc<Self>, stream: &TcpStream, peer: IpAddr) -> Option<Ticket> {
        let handle = stream.try_clone().ok()?;
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if !peer.is_loopback() && held.iter().filter(|s| s.peer == peer).count() >= PER_PEER {
            return None;
        }
        if held.len() >= MAX_CONNECTIONS {
            let slowest = held
                .iter()
                .enumerate()
                .filter(|(_, s)| s.reading)
                .min_by_key(|(_, s)| s.opened)
                .map(|(i, _)| i)?;
            let given_up = held.swap_remove(slowest);
            // Its thread's read fails at once and the thread ends.
            let _ = given_up.stream.shutdown(Shutdown::Both);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        held.push(Slot {
            id,
            peer,
            opened: Instant::now(),
            reading: true,
            stream: handle,
        });
        Some(Ticket {
            slots: self.clone(),
            id,
        })
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut Vec<Slot>, usize)) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = held.iter().position(|s| s.id == id) {
            change(&mut held, at);
        }
    }
}

impl Ticket {
    /// The request has been read: from now on the connection is being answered, and is not
    /// given up for another.
    pub fn answering(&self) {
        self.slots
            .update(self.id, |held, at| held[at].reading = false);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.slots.update(self.id, |held, at| {
            held.swap_remove(at);
        });
    }
}
