//! Datagrams an engine wants sent: one arena of bytes plus (socket, destination, range) entries.
//! The I/O layer drains it after every batch of input; nothing is allocated per message once
//! the arena has grown to its working size.

use std::net::SocketAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The engine's socket index the datagram leaves from.
    pub sock: u16,
    pub dest: SocketAddr,
    pub start: u32,
    pub end: u32,
}

#[derive(Default)]
pub struct Out {
    pub buf: Vec<u8>,
    pub list: Vec<Transmit>,
}

impl Out {
    /// Start a datagram: write it into `self.buf` after this, then call `finish`.
    pub fn begin(&mut self) -> usize {
        self.buf.len()
    }

    pub fn finish(&mut self, start: usize, sock: u16, dest: SocketAddr) {
        let end = self.buf.len();
        self.list.push(Transmit {
            sock,
            dest,
            start: start as u32,
            end: end as u32,
        });
    }

    pub fn bytes(&self, t: &Transmit) -> &[u8] {
        self.buf
            .get(t.start as usize..t.end as usize)
            .unwrap_or(&[])
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.list.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
